"""Fingerprints on real photos: what each hash promises, and what it does not."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from photocheck.decode import decode
from photocheck.fingerprints import DIHEDRAL_NAMES, fingerprint, hamming

from .conftest import data_file

MAX_PIXELS = 120_000_000


def _fp(data: bytes):
    return fingerprint(data, decode(data, max_pixels=MAX_PIXELS))


def test_shapes_and_json() -> None:
    data = data_file("buildings/opensfm_lund/05.jpg").read_bytes()
    fp = _fp(data)
    assert len(fp.pdq) == 32 and len(fp.pdq_dihedral) == len(DIHEDRAL_NAMES) == 8
    assert fp.pdq_dihedral[0] == fp.pdq
    assert fp.pdq_quality >= 50
    assert 0 <= fp.phash < 1 << 64
    js = fp.to_json()
    assert js["pdq"] == fp.pdq.hex() and len(js["phash"]) == 16


def test_unreadable_has_only_byte_hash() -> None:
    fp = fingerprint(b"not an image", None)
    assert fp.pdq is None and fp.pixel_sha256 is None and len(fp.sha256) == 64


def test_pixel_digest_ignores_metadata_only() -> None:
    """The same JPEG with and without EXIF: bytes differ, pixels do not."""
    a = _fp(data_file("exif/exifr_misc/img_1771_with_exif.jpg").read_bytes())
    b = _fp(data_file("exif/exifr_misc/img_1771_no_exif.jpg").read_bytes())
    assert a.sha256 != b.sha256
    assert a.pixel_sha256 == b.pixel_sha256


def test_pixel_digest_changes_on_reencode() -> None:
    data = data_file("buildings/opensfm_lund/05.jpg").read_bytes()
    buf = io.BytesIO()
    Image.open(io.BytesIO(data)).save(buf, "JPEG", quality=70)
    a, b = _fp(data), _fp(buf.getvalue())
    assert a.pixel_sha256 != b.pixel_sha256  # not perceptual
    assert hamming(a.pdq, b.pdq) <= 16  # PDQ is
    assert (a.phash ^ b.phash).bit_count() <= 6


@pytest.mark.parametrize("n", range(1, 9))
def test_orientation_variants_hash_alike(n: int) -> None:
    base = _fp(data_file("exif/orientation/Landscape_0.jpg").read_bytes())
    other = _fp(data_file(f"exif/orientation/Landscape_{n}.jpg").read_bytes())
    assert hamming(base.pdq, other.pdq) <= 16


def test_dihedral_variant_finds_mirror() -> None:
    data = data_file("buildings/opensfm_lund/05.jpg").read_bytes()
    photo = decode(data, max_pixels=MAX_PIXELS)
    mirrored = Image.fromarray(np.ascontiguousarray(photo.rgb[:, ::-1]))
    buf = io.BytesIO()
    mirrored.save(buf, "PNG")
    a, b = fingerprint(data, photo), _fp(buf.getvalue())
    assert a.pdq is not None and b.pdq is not None
    assert hamming(a.pdq, b.pdq) > 64
    best = min(range(8), key=lambda i: hamming(a.pdq_dihedral[i], b.pdq))
    assert DIHEDRAL_NAMES[best] == "flip_horizontal"
    assert hamming(a.pdq_dihedral[best], b.pdq) <= 16  # the mirror is resized again


def test_phash_close_to_imagehash() -> None:
    imagehash = pytest.importorskip("imagehash")
    data = data_file("near_dup/imagededup_ukbench/ukbench00120.jpg").read_bytes()
    photo = decode(data, max_pixels=MAX_PIXELS)
    theirs = int(str(imagehash.phash(Image.fromarray(photo.grey))), 16)
    ours = fingerprint(data, photo).phash
    assert ours is not None and (ours ^ theirs).bit_count() <= 6  # resamplers differ
