"""A HEIC with 20 KB of garbage inside its image data is UNREADABLE (libde265 would
conceal the damage and pillow-heif decode it as a smeared but 'readable' photo)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from photocheck import ContentModel, check_photo, default_policy
from photocheck.decode import decode
from photocheck.errors import DecodeError
from photocheck.heif_strict import strict_heif_error

from .conftest import data_file

HEIC = "exif/phones_gps/iphone8_IMG_1034_gps_guangzhou.heic"


def _mdat(data: bytes) -> tuple[int, int]:
    offset = 0
    while offset < len(data):
        size, box = struct.unpack_from(">I4s", data, offset)
        if size == 1:  # a 64-bit size follows the type
            (size,) = struct.unpack_from(">Q", data, offset + 8)
        if box == b"mdat":
            return offset, size
        offset += size
    raise AssertionError("no mdat box")


@pytest.mark.parametrize("where", [0.3, 0.5, 0.8])
def test_garbage_inside_heic_image_data_is_unreadable(where: float) -> None:
    data = data_file(HEIC).read_bytes()
    start, size = _mdat(data)
    at = start + int(size * where)
    garbage = np.random.default_rng(int(where * 10)).integers(0, 256, 20480, dtype=np.uint8)
    damaged = data[:at] + garbage.tobytes() + data[at + 20480 :]
    assert len(damaged) == len(data)  # same size: no box is cut short
    with pytest.raises(DecodeError, match="HEIF image data is damaged"):
        decode(damaged, max_pixels=120_000_000)
    report = check_photo(damaged, policy=default_policy(), model=ContentModel())
    assert [r.code.value for r in report.reasons] == ["UNREADABLE"]


def test_intact_heic_files_decode_strictly() -> None:
    for name in (
        HEIC,
        "exif/phones_gps/iphone11pro_exif_at_eof.heic",
        "exif/exif_samples/heic_IMG_5195.HEIC",
        "exif/exifr_misc/heic_iphone7_gps.heic",
        "exif/exif_samples/heic_samplefilehub.heif",
    ):
        data = data_file(name).read_bytes()
        assert strict_heif_error(data) is None, name
        assert decode(data, max_pixels=120_000_000).width > 0
