"""decode(): every accepted format, orientation, DCT scaling, and every way bytes go bad.

In Pillow's manner: truncations are made by slicing real files, broken files are
parametrized one by one, and the hang guard runs the decoder in a subprocess.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from photocheck.decode import DecodedPhoto, decode
from photocheck.errors import DecodeError, TooLarge, UnsupportedFormat

from .conftest import DATA, data_file

MAX = 120_000_000
UNREADABLE = [
    "bad_input/corrupt/corrupted.jpg",  # libjpeg: "Corrupt JPEG data: premature end of data..."
    "bad_input/corrupt/truncated_sony_e5823.jpg",
    "bad_input/corrupt/beach_unidentifiable.jpg",
    "bad_input/corrupt/ukbench09268_corrupt.jpg",
]
TINY_VALID = sorted(p.name for p in (DATA / "bad_input/corrupt").glob("image0*.jpg"))
HEIF_FILES = [
    "exif/exif_samples/heic_IMG_5195.HEIC",
    "exif/exif_samples/heic_samplefilehub.heif",
    "exif/phones_gps/iphone8_IMG_1034_gps_guangzhou.heic",
    "exif/phones_gps/iphone11pro_exif_at_eof.heic",
    "exif/exifr_misc/heic_iphone7_gps.heic",
]
TEN_MP = "buildings/camera_corpus/kodak_z1012_facade_person.jpg"  # 3648x2736


def _decode(data: bytes, **kw: int) -> DecodedPhoto:
    return decode(data, max_pixels=kw.get("max_pixels", MAX), working_size=800)


def _read(relpath: str) -> bytes:
    return data_file(relpath).read_bytes()


def _encode(im: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def _all_photos() -> list[str]:
    skip = {".tsv", ".md"}
    return sorted(
        str(p.relative_to(DATA)) for p in DATA.rglob("*") if p.is_file() and p.suffix not in skip
    )


# -- good input ---------------------------------------------------------------------


def test_ten_megapixel_jpeg_is_dct_scaled() -> None:
    photo = _decode(_read(TEN_MP))
    assert (photo.width, photo.height) == (3648, 2736)
    assert photo.decoded_scale <= 0.25  # libjpeg produced 1/4 size, not 10 MP
    assert max(photo.rgb.shape[:2]) == 800
    assert photo.grey.shape == photo.rgb.shape[:2]
    assert photo.rgb.dtype == np.uint8


@pytest.mark.parametrize("n", range(9))
def test_orientation_makes_all_nine_look_the_same(n: int) -> None:
    reference = _decode(_read("exif/orientation/Landscape_1.jpg"))
    photo = _decode(_read(f"exif/orientation/Landscape_{n}.jpg"))
    assert photo.orientation == (n or 1)
    assert (photo.width, photo.height) == (reference.width, reference.height)
    assert photo.grey.shape == reference.grey.shape
    diff = np.abs(photo.grey.astype(np.int16) - reference.grey.astype(np.int16))
    assert diff.mean() < 3.0  # the same picture, only JPEG noise apart


def test_orientation_six_swaps_full_size() -> None:
    data = _encode(
        Image.fromarray(np.tile(np.arange(200, dtype=np.uint8), (100, 1))),
        "JPEG",
        exif=_exif_with_orientation(6),
    )
    photo = _decode(data)
    assert (photo.width, photo.height) == (100, 200)
    assert photo.grey.shape == (200, 100)
    # rotated 90° clockwise: the dark left edge of the stored image is now at the top
    assert photo.grey[:5].mean() < photo.grey[-5:].mean()


@pytest.mark.parametrize("relpath", HEIF_FILES)
def test_heif_decodes_with_bare_tiff_exif(relpath: str) -> None:
    photo = _decode(_read(relpath))
    assert photo.format == "HEIF"
    assert photo.exif is not None
    assert photo.exif[:4] in (b"II*\x00", b"MM\x00*")
    assert max(photo.rgb.shape[:2]) == min(800, max(photo.width, photo.height))


@pytest.mark.parametrize(
    ("fmt", "params"),
    [("PNG", {}), ("WEBP", {"quality": 90}), ("PPM", {}), ("JPEG", {"quality": 90})],
)
def test_synthetic_formats(fmt: str, params: dict[str, object]) -> None:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    photo = _decode(_encode(Image.fromarray(pixels), fmt, **params))
    assert photo.format == fmt
    assert (photo.width, photo.height) == (640, 480)
    assert photo.rgb.shape == (480, 640, 3)


def test_pgm_grey_and_sixteen_bit() -> None:
    ramp = np.tile(np.arange(0, 65536, 256, dtype=np.uint16), (64, 1))
    header = b"P5 256 64 65535\n"
    photo = _decode(header + ramp.astype(">u2").tobytes())
    assert photo.format == "PPM"
    assert photo.grey[:, 0].max() < 5 and photo.grey[:, -1].min() > 250


@pytest.mark.parametrize("relpath", sorted(p for p in os.listdir(DATA / "exif/corrupt_exif")))
def test_malformed_exif_never_makes_a_photo_unreadable(relpath: str) -> None:
    photo = _decode(_read(f"exif/corrupt_exif/{relpath}"))
    assert photo.pixels > 0


@pytest.mark.parametrize("name", TINY_VALID)
def test_tiny_web_graphics_are_valid(name: str) -> None:
    photo = _decode(_read(f"bad_input/corrupt/{name}"))
    assert photo.pixels < 300_000


def test_no_good_photo_in_the_set_is_flagged() -> None:
    """The damage detector must not reject any photo of the developer set."""
    failed = {}
    for relpath in _all_photos():
        if relpath in UNREADABLE:
            continue
        try:
            _decode(_read(relpath))
        except DecodeError as exc:
            failed[relpath] = str(exc)
    assert not failed
    assert len(_all_photos()) > 150


# -- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize("relpath", UNREADABLE)
def test_broken_files_are_decode_errors(relpath: str) -> None:
    with pytest.raises(DecodeError):
        _decode(_read(relpath))


def test_corrupt_entropy_data_is_named() -> None:
    with pytest.raises(DecodeError, match="Corrupt JPEG data"):
        _decode(_read("bad_input/corrupt/corrupted.jpg"))


@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.6, 0.95, 0.999])
def test_truncated_jpeg(fraction: float) -> None:
    data = _read("buildings/opensfm_lund/01.jpg")
    with pytest.raises(DecodeError):
        _decode(data[: int(len(data) * fraction)])


@pytest.mark.parametrize("length", [-2, -100])
def test_jpeg_cut_just_before_the_end(length: int) -> None:
    with pytest.raises(DecodeError):
        _decode(_read("buildings/opensfm_lund/01.jpg")[:length])


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.9])
def test_truncated_png_webp_ppm(fraction: float) -> None:
    source = Image.open(data_file("buildings/opensfm_lund/02.jpg"))
    for fmt in ("PNG", "WEBP", "PPM"):
        data = _encode(source, fmt)
        with pytest.raises(DecodeError):
            _decode(data[: int(len(data) * fraction)])


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.9])
def test_truncated_heic(fraction: float) -> None:
    data = _read("exif/exifr_misc/heic_iphone7_gps.heic")
    with pytest.raises(DecodeError):
        _decode(data[: int(len(data) * fraction)])


def test_damaged_bytes_inside_entropy_data() -> None:
    data = bytearray(_read("buildings/opensfm_lund/03.jpg"))
    middle = len(data) // 2
    data[middle : middle + 64] = b"\xff\xd3" * 32  # stray restart markers in the scan
    with pytest.raises(DecodeError):
        _decode(bytes(data))


def test_png_bomb_header_is_too_large() -> None:
    """A tiny PNG that claims 100000x100000 pixels is refused before any decoding."""
    ihdr = _png_chunk(b"IHDR", (100_000).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0]))
    idat = _png_chunk(b"IDAT", zlib.compress(bytes(1000)))
    with pytest.raises(TooLarge):
        _decode(b"\x89PNG\r\n\x1a\n" + ihdr + idat)


def test_png_just_under_pillow_limit_uses_the_policy_limit() -> None:
    ihdr = _png_chunk(b"IHDR", (9_000).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0]))
    idat = _png_chunk(b"IDAT", zlib.compress(bytes(1000)))
    with pytest.raises(TooLarge):
        _decode(b"\x89PNG\r\n\x1a\n" + ihdr + idat, max_pixels=50_000_000)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")


def test_policy_pixel_limit_is_too_large() -> None:
    with pytest.raises(TooLarge):
        _decode(_read(TEN_MP), max_pixels=5_000_000)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, this is a text file\n" * 20,
        np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        b"GIF89a" + bytes(100),
        b"%PDF-1.4\n" + bytes(100),
    ],
    ids=["empty", "text", "random", "gif", "pdf"],
)
def test_not_an_accepted_image(data: bytes) -> None:
    with pytest.raises(UnsupportedFormat):
        _decode(data)


def test_gif_is_unsupported() -> None:
    data = _encode(Image.new("RGB", (700, 500), "white"), "GIF")
    with pytest.raises(UnsupportedFormat):
        _decode(data)


def test_truncated_images_stay_errors() -> None:
    import photocheck  # noqa: F401  (the whole library must not flip the global)

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_corrupt_files_never_hang() -> None:
    """Every file in bad_input/corrupt is answered, each in a fresh interpreter."""
    script = (
        "import sys, time; from pathlib import Path\n"
        "from photocheck.decode import decode\nfrom photocheck.errors import DecodeError\n"
        "for p in sorted(Path(sys.argv[1]).iterdir()):\n"
        "    t = time.perf_counter()\n"
        "    try:\n        decode(p.read_bytes(), max_pixels=120_000_000)\n"
        "    except DecodeError:\n        pass\n"
        "    print(p.name, round(time.perf_counter() - t, 3), flush=True)\n"
    )
    folder = DATA / "bad_input/corrupt"
    done = subprocess.run(
        [sys.executable, "-c", script, str(folder)],
        capture_output=True,
        text=True,
        timeout=120,  # generous: a hang fails here, slowness on a busy machine does not
        check=True,
    )
    answered = {line.split()[0] for line in done.stdout.splitlines()}
    assert answered == {p.name for p in Path(folder).iterdir()}


def _exif_with_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()
