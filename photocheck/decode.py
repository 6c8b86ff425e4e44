"""Bytes -> DecodedPhoto, once per photo.

Every check shares the pixels made here: a working-size RGB and grey image, already
turned upright by EXIF orientation. JPEGs are DCT-scaled while decoding (libjpeg-turbo
through ``simplejpeg``, Pillow's ``draft`` as the fallback), which is most of the speed
of the whole pipeline: a 10 MP photo is entropy-decoded once and inverse-transformed
at 1/4 size.

Why not Pillow alone for JPEG: Pillow's decoder silences every libjpeg warning, and
"Corrupt JPEG data: premature end of data segment" is only a warning, so a photo whose
entropy-coded data is damaged comes back grey-filled or smeared without any error.
libjpeg-turbo's stop-on-warning mode (``simplejpeg.decode_jpeg(strict=True)``) turns
those warnings into an error; we then keep the ones that mean damaged pixel data.

This is the only module that touches Pillow's process-wide settings; it relies on
``ImageFile.LOAD_TRUNCATED_IMAGES`` staying False, so a truncated file is an error.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
import pillow_heif
import simplejpeg
from PIL import Image, ImageFile, JpegImagePlugin

from .errors import DecodeError, TooLarge, UnsupportedFormat
from .heif_strict import HeifDamaged, decode_heif_strict

__all__ = ["ACCEPTED_FORMATS", "DEFAULT_DECODE_BUDGET", "DecodedPhoto", "decode", "decode_cost"]

pillow_heif.register_heif_opener()

# Pillow plugin names. PPM covers PGM/PBM; MPO is a JPEG with extra frames (phones).
ACCEPTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "HEIF", "PPM"})
_OPEN_FORMATS = tuple(sorted(ACCEPTED_FORMATS - {"MPO"}))  # MPO opens via the JPEG plugin

# libjpeg warnings (jerror.h) that mean the entropy-coded pixel data is damaged or cut
# short. Others ("Invalid SOS parameters for sequential JPEG", "Unknown Adobe color
# transform", "bad ICC marker") concern headers only and leave the pixels intact.
_DAMAGE_WARNINGS = (
    "Corrupt JPEG data: premature end of data segment",  # JWRN_HIT_MARKER
    "Corrupt JPEG data: bad Huffman code",  # JWRN_HUFF_BAD_CODE
    "Corrupt JPEG data: bad arithmetic code",  # JWRN_ARITH_BAD_CODE
    "Corrupt JPEG data: found marker",  # JWRN_MUST_RESYNC (lost restart marker)
    "Premature end of JPEG file",  # JWRN_JPEG_EOF (truncated)
    "Inconsistent progression sequence",  # JWRN_BOGUS_PROGRESSION
)
# JWRN_EXTRANEOUS_DATA is damage when it ends entropy data (before RSTn or EOI): the
# Huffman decoder finished early, i.e. lost sync. Before a header marker it is padding.
_EXTRANEOUS = "Corrupt JPEG data: "
_ENTROPY_END_MARKERS = frozenset(f"0x{m:02x}" for m in range(0xD0, 0xDA))

_ORIENTATIONS = frozenset(range(1, 9))

# Memory one decode may take (estimated from the header, before any pixel is decoded):
# with the process's own ~200 MB, a photo's peak stays under 600 MB whatever its format.
DEFAULT_DECODE_BUDGET = 400 * 1024 * 1024
_MB = 1024 * 1024
# Bytes per pixel of a full decode, measured (peak RSS growth / pixels, Pillow 13,
# pillow-heif 1.8): Pillow keeps 1-band 8-bit images in 1 byte, 16-bit in 2, everything
# else in 4. libwebp decodes into its own RGBA buffer, copied to a Python bytes, then into
# the image (~16); libheif holds YUV planes and an RGB plane beside Pillow's (~7).
_PILLOW_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2}
_FORMAT_BYTES = {"WEBP": 16, "HEIF": 8}


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
    decoded_scale: float = 1.0  # size of the pixels the codec produced / full size

    @property
    def pixels(self) -> int:
        return self.width * self.height


def decode(
    data: bytes,
    *,
    max_pixels: int,
    working_size: int = 800,
    max_bytes: int = DEFAULT_DECODE_BUDGET,
) -> DecodedPhoto:
    """Decode ``data`` once into a working-size upright image.

    :exception UnsupportedFormat: empty, not an image, or not an accepted format.
    :exception TooLarge: more than ``max_pixels`` pixels, or decoding it would take more
        than ``max_bytes`` of memory (a few hundred KB of PNG or WebP can say 120 MP).
    :exception DecodeError: truncated or corrupt image data.
    """
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # someone flipped the global: refuse to grey-fill
        msg = "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set; truncated photos would pass"
        raise RuntimeError(msg)
    im = _open(data)
    with im:
        fmt = "JPEG" if im.format == "MPO" else str(im.format)
        w, h = im.size
        if w * h > max_pixels:
            msg = f"{w}x{h} is more than the {max_pixels} pixel limit"
            raise TooLarge(msg)
        cost = decode_cost(im, working_size)
        if cost > max_bytes:
            msg = (
                f"decoding this {w}x{h} {fmt} ({im.mode}) would take about {cost // _MB} MB,"
                f" more than the {max_bytes // _MB} MB allowed per photo"
            )
            raise TooLarge(msg)
        raw_exif = _tiff_block(im.info.get("exif"))
        orientation = _orientation(im)
        xmp = im.info.get("xmp")
        if isinstance(xmp, str):
            xmp = xmp.encode("utf-8")
        if fmt == "JPEG":
            pixels = _jpeg_pixels(im, data, working_size)
        elif fmt == "HEIF":
            _check_boxes_complete(data)
            pixels = _heif_pixels(im, data, working_size)
        else:
            pixels = _pillow_pixels(im, working_size)
    decoded_scale = max(pixels.shape[:2]) / max(w, h)
    rgb = _fit(pixels, working_size)
    # libheif already applied the HEIF irot/imir boxes (pillow-heif resets the tag to 1).
    if fmt != "HEIF" and orientation != 1:
        rgb = np.ascontiguousarray(_upright(rgb, orientation))
        if orientation in (5, 6, 7, 8):
            w, h = h, w
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)  # ITU-R 601 luma, as Pillow's "L"
    return DecodedPhoto(
        format=fmt,
        width=w,
        height=h,
        orientation=orientation,
        rgb=rgb,
        grey=grey,
        exif=raw_exif,
        xmp=xmp if isinstance(xmp, bytes) else None,
        decoded_scale=round(decoded_scale, 4),
    )


def decode_cost(im: Image.Image, working_size: int) -> int:
    """Estimated peak memory (bytes) of decoding ``im``, from its header alone.

    JPEG is DCT-scaled to about the working size; a progressive JPEG also keeps every
    DCT coefficient (2 bytes each: 1 + 2 chroma planes at their sampling). Other formats
    decode at full size (their codecs cannot scale); the working image is then reduced
    in strips, so nothing else of full size is made.
    """
    w, h = im.size
    if im.format in ("JPEG", "MPO"):
        scale = max(1.0, max(w, h) / (2 * working_size))  # within 2x of the working size
        cost = int(w * h * 4 / (scale * scale))
        if im.info.get("progressive") or im.info.get("progression"):
            chroma = {0: 2.0, 1: 1.0, 2: 0.5}.get(JpegImagePlugin.get_sampling(im), 2.0)
            bands = 1 if im.mode == "L" else 1 + chroma
            cost += int(w * h * 2 * bands)
        return cost
    per_pixel = _FORMAT_BYTES.get(str(im.format), _PILLOW_BYTES.get(im.mode, 4))
    if im.format == "HEIF" and int(im.info.get("bit_depth") or 8) > 8:
        per_pixel *= 2  # libheif decodes high bit depth into 16-bit planes first
    return w * h * per_pixel


def _open(data: bytes) -> Image.Image:
    """Read the header only; only our formats' parsers ever see the bytes."""
    if not data:
        msg = "empty file"
        raise UnsupportedFormat(msg)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data), formats=_OPEN_FORMATS)
    except Image.DecompressionBombError as exc:
        raise TooLarge(str(exc)) from exc
    except Image.UnidentifiedImageError as exc:
        msg = "not a JPEG, PNG, WebP, HEIC/HEIF or PPM/PGM image"
        raise UnsupportedFormat(msg) from exc
    except (OSError, SyntaxError, ValueError, RuntimeError, struct.error) as exc:
        # a known signature with a header that cannot be parsed (pillow-heif: RuntimeError)
        msg = f"image header is damaged: {exc}"
        raise DecodeError(msg) from exc


def _orientation(im: Image.Image) -> int:
    """EXIF orientation 1-8; malformed EXIF never makes a readable photo unreadable."""
    if im.format == "HEIF":
        value = im.info.get("original_orientation")
    else:
        try:
            value = im.getexif().get(0x0112)
        except (SyntaxError, ValueError, OSError, struct.error, IndexError, KeyError):
            return 1
    try:
        orientation = int(value) if value is not None else 1
    except (TypeError, ValueError):
        return 1
    return orientation if orientation in _ORIENTATIONS else 1


def _jpeg_pixels(im: Image.Image, data: bytes, working_size: int) -> np.ndarray:
    """Entropy-decode once, inverse-DCT at the smallest 1/8-step scale >= working size.

    libjpeg-turbo runs in stop-on-warning mode; a damage warning is a DecodeError. Other
    failures (CMYK/YCCK colour, which turbojpeg will not convert to RGB) fall back to
    Pillow's decoder with ``draft``.
    """
    w, h = im.size
    if w >= h:
        size_hint = {"min_width": min(w, working_size)}
    else:
        size_hint = {"min_height": min(h, working_size)}
    try:
        array = simplejpeg.decode_jpeg(
            data, colorspace="RGB", fastdct=True, fastupsample=True, strict=True, **size_hint
        )
    except ValueError as exc:
        if _is_damage(str(exc)):
            msg = f"JPEG data is damaged: {exc}"
            raise DecodeError(msg) from exc
    else:
        return array
    scale = max(w, h) / working_size
    im.draft("RGB", (max(1, round(w / scale)), max(1, round(h / scale))))
    return _pillow_pixels(im, working_size)


def _heif_pixels(im: Image.Image, data: bytes, working_size: int) -> np.ndarray:
    """libheif in strict mode (libde265 would conceal damaged HEVC data); pillow-heif
    only when that libheif cannot be loaded."""
    try:
        pixels = decode_heif_strict(data, working_size)
    except HeifDamaged as exc:
        msg = f"HEIF image data is damaged: {exc}"
        raise DecodeError(msg) from exc
    return pixels if pixels is not None else _pillow_pixels(im, working_size)


def _check_boxes_complete(data: bytes) -> None:
    """Every top-level ISO-BMFF box (ftyp, meta, mdat...) must fit inside the file.

    libheif decodes a grid image whose tiles are cut off without any error (the missing
    tiles come back grey), so a truncated HEIC is caught here, from the box sizes.
    """
    offset = 0
    while offset < len(data):
        if len(data) - offset < 8:
            msg = f"HEIF file ends inside a box header at byte {offset}"
            raise DecodeError(msg)
        size, box = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:  # 64-bit size follows the type
            if len(data) - offset < 16:
                msg = f"HEIF file ends inside a box header at byte {offset}"
                raise DecodeError(msg)
            (size,) = struct.unpack_from(">Q", data, offset + 8)
            header = 16
        elif size == 0:  # the box runs to the end of the file
            size = len(data) - offset
        if size < header or offset + size > len(data):
            name = box.decode("latin-1")
            msg = f"HEIF file is truncated: box {name!r} needs {size} bytes at byte {offset}"
            raise DecodeError(msg)
        offset += size


def _is_damage(message: str) -> bool:
    if message.startswith(_DAMAGE_WARNINGS):
        return True
    if message.startswith(_EXTRANEOUS) and "extraneous bytes before marker" in message:
        return message.rsplit(" ", 1)[-1].lower() in _ENTROPY_END_MARKERS
    return False


def _pillow_pixels(im: Image.Image, working_size: int) -> np.ndarray:
    """Full decode (or JPEG draft) through Pillow, reduced towards the working size.

    The decoded image is converted and box-reduced a strip at a time, so no full-size
    copy (RGB conversion, premultiplied alpha, 16 -> 8 bit) is ever made beside it.
    """
    try:
        im.load()
        # box-reduce to within 2x above the working size; _fit makes the final resize
        factor = max(1, max(im.size) // working_size)
        to_8bit = _to_8bit_scale(im) if im.mode in _WIDE_MODES else None
        w, h = im.size
        rows = factor * max(1, _STRIP_PIXELS // (w * factor))
        strips = []
        for top in range(0, h, rows):
            strip = im.crop((0, top, w, min(h, top + rows)))
            strip = _strip_to_8bit(strip, to_8bit) if to_8bit is not None else strip
            strip = strip.convert("RGB")
            strips.append(np.asarray(strip.reduce(factor) if factor > 1 else strip))
        return strips[0] if len(strips) == 1 else np.concatenate(strips)
    except (OSError, SyntaxError, ValueError, RuntimeError, struct.error) as exc:
        msg = f"image data is damaged or incomplete: {exc}"
        raise DecodeError(msg) from exc


_WIDE_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "F"})
_STRIP_PIXELS = 4 * 1024 * 1024  # pixels converted at a time


def _to_8bit_scale(im: Image.Image) -> float:
    """16-bit and float greyscale (PGM with maxval > 255, 16-bit PNG): 8-bit scale."""
    _, high = im.getextrema()
    return 255.0 / 65535.0 if float(high) > 255 else 1.0  # type: ignore[arg-type]


def _strip_to_8bit(strip: Image.Image, scale: float) -> Image.Image:
    values = np.asarray(strip, dtype=np.float32)
    return Image.fromarray(np.clip(values * scale, 0, 255).astype(np.uint8), "L")


def _fit(rgb: np.ndarray, working_size: int) -> np.ndarray:
    """Shrink so the long side is ``working_size``; never enlarge.

    Bilinear, not area averaging: the codec already scaled to within 2x of the working
    size, and area resampling at such fractional ratios costs ~3 ms of a ~55 ms check.
    """
    h, w = rgb.shape[:2]
    scale = working_size / max(h, w)
    if scale >= 1:
        return np.ascontiguousarray(rgb)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)


def _upright(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF orientation 2-8 (the transform that makes the stored image upright)."""
    if orientation == 2:
        return rgb[:, ::-1]
    if orientation == 3:
        return rgb[::-1, ::-1]
    if orientation == 4:
        return rgb[::-1]
    if orientation == 5:
        return rgb.transpose(1, 0, 2)
    if orientation == 6:
        return rgb.transpose(1, 0, 2)[:, ::-1]  # rotate 90° clockwise
    if orientation == 7:
        return rgb[::-1, ::-1].transpose(1, 0, 2)
    if orientation == 8:
        return rgb.transpose(1, 0, 2)[::-1]  # rotate 90° counter-clockwise
    return rgb


def _tiff_block(raw: bytes | None) -> bytes | None:
    """Strip the ``Exif\\0\\0`` APP1 prefix so every format yields a bare TIFF block."""
    if not raw:
        return None
    if raw.startswith(b"Exif\x00\x00"):
        raw = raw[6:]
    return raw or None
