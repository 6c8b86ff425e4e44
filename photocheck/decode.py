"""Bytes -> DecodedPhoto, once per photo.

Every check shares the pixels made here: a working-size RGB and grey image, already
turned upright by EXIF orientation. JPEGs are DCT-scaled while decoding (Pillow's
``draft``), which is most of the speed of the whole pipeline.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .errors import DecodeError, TooLarge, UnsupportedFormat

__all__ = ["DecodedPhoto", "decode", "ACCEPTED_FORMATS"]

try:  # HEIC/HEIF from iPhones
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover - declared dependency
    pillow_heif = None

ACCEPTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "HEIF", "PPM"})


@dataclass(frozen=True, eq=False)
class DecodedPhoto:
    """An upright photo at working size, plus what the container told us."""

    format: str
    width: int  # full size, after orientation
    height: int
    orientation: int  # EXIF orientation tag as found (1 when absent)
    rgb: np.ndarray  # HxWx3 uint8, working size, upright
    grey: np.ndarray  # HxW uint8, working size, upright
    exif: bytes | None  # raw EXIF block (TIFF header onwards) when the container has one
    xmp: bytes | None

    @property
    def pixels(self) -> int:
        return self.width * self.height


def decode(data: bytes, *, max_pixels: int, working_size: int = 800) -> DecodedPhoto:
    """Decode ``data`` once into a working-size upright image.

    :exception UnsupportedFormat: not an image, or not an accepted format.
    :exception TooLarge: more than ``max_pixels`` pixels.
    :exception DecodeError: truncated or corrupt image data.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise TooLarge(str(exc)) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        msg = "not a recognisable image file"
        raise UnsupportedFormat(msg) from exc
    with im:
        if im.format not in ACCEPTED_FORMATS:
            msg = f"unsupported image format {im.format}"
            raise UnsupportedFormat(msg)
        w, h = im.size
        if w * h > max_pixels:
            msg = f"{w}x{h} is more than the {max_pixels} pixel limit"
            raise TooLarge(msg)
        exif = im.getexif()
        orientation = int(exif.get(0x0112, 1) or 1) if exif else 1
        if orientation not in range(1, 9):
            orientation = 1
        raw_exif = im.info.get("exif")
        xmp = im.info.get("xmp")
        if isinstance(xmp, str):
            xmp = xmp.encode("utf-8")
        if im.format in ("JPEG", "MPO"):
            scale_to = (max(1, w * working_size // max(w, h)), max(1, h * working_size // max(w, h)))
            im.draft("RGB", scale_to)
        try:
            im.load()
            small = im.convert("RGB")
        except (OSError, SyntaxError, ValueError) as exc:
            msg = f"image data is damaged or incomplete: {exc}"
            raise DecodeError(msg) from exc
    small = _upright(small, orientation)
    small.thumbnail((working_size, working_size), Image.Resampling.BILINEAR, reducing_gap=2.0)
    rgb = np.asarray(small)
    grey = np.asarray(small.convert("L"))
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    return DecodedPhoto(
        format="JPEG" if im.format == "MPO" else str(im.format),
        width=w,
        height=h,
        orientation=orientation,
        rgb=rgb,
        grey=grey,
        exif=_tiff_block(raw_exif),
        xmp=xmp if isinstance(xmp, bytes) else None,
    )


def _upright(im: Image.Image, orientation: int) -> Image.Image:
    if orientation == 1:
        return im
    transpose = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }[orientation]
    return im.transpose(transpose)


def _tiff_block(raw: bytes | None) -> bytes | None:
    """Strip the ``Exif\\0\\0`` APP1 prefix so every format yields a bare TIFF block."""
    if not raw:
        return None
    if raw.startswith(b"Exif\x00\x00"):
        return raw[6:]
    return raw


