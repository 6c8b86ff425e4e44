"""HEIF/HEIC pixels decoded strictly: libheif's strict decoding, through ctypes.

libde265 conceals damaged HEVC data (20 KB of garbage inside a tile decodes to a
plausible, smeared tile) and pillow-heif gives no way to ask for strictness. libheif
itself has it: ``heif_decoding_options.strict_decoding`` turns the decoder's warnings
into an error. pillow-heif's wheels ship that very libheif (``pillow_heif.libs``), so
it is called here directly and its RGB plane is reduced in place: the same pixels as
pillow-heif's (identical on the developer set), decoded once, without Pillow's copy.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
from pathlib import Path

import numpy as np
import pillow_heif
from PIL import Image

__all__ = ["HeifDamaged", "decode_heif_strict", "strict_heif_error"]

log = logging.getLogger(__name__)

_UNDEFINED = 99  # heif_colorspace_undefined / heif_chroma_undefined: decode as stored
_RGB, _INTERLEAVED_RGB = 1, 10  # heif_colorspace_RGB, heif_chroma_interleaved_RGB
_HDR_TO_8BIT_OFFSET = 40
_STRIP_PIXELS = 4 * 1024 * 1024
# struct heif_decoding_options (libheif >= 1.13, LP64): uint8 version, uint8
# ignore_transformations, three progress callbacks and their user pointer (8..39),
# uint8 convert_hdr_to_8bit (40, version >= 2), uint8 strict_decoding (41, version >= 3)
_STRICT_OFFSET = 41
_STRICT_VERSION = 3


class _Error(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("subcode", ctypes.c_int), ("message", ctypes.c_char_p)]


@functools.cache
def _libheif() -> ctypes.CDLL | None:
    bundled = Path(pillow_heif.__file__).parent.parent / "pillow_heif.libs"
    candidates = sorted(bundled.glob("libheif*.so*")) if bundled.is_dir() else []
    name = str(candidates[0]) if candidates else ctypes.util.find_library("heif")
    if name is None:
        log.warning("libheif not found: HEIC pixel data is not checked strictly")
        return None
    lib = ctypes.CDLL(name)
    vp = ctypes.c_void_p
    lib.heif_context_alloc.restype = vp
    lib.heif_context_free.argtypes = [vp]
    lib.heif_context_read_from_memory_without_copy.restype = _Error
    lib.heif_context_read_from_memory_without_copy.argtypes = [
        vp,
        ctypes.c_char_p,
        ctypes.c_size_t,
        vp,
    ]
    lib.heif_context_get_primary_image_handle.restype = _Error
    lib.heif_context_get_primary_image_handle.argtypes = [vp, ctypes.POINTER(vp)]
    lib.heif_image_handle_release.argtypes = [vp]
    lib.heif_decoding_options_alloc.restype = vp
    lib.heif_decoding_options_free.argtypes = [vp]
    lib.heif_decode_image.restype = _Error
    lib.heif_decode_image.argtypes = [vp, ctypes.POINTER(vp), ctypes.c_int, ctypes.c_int, vp]
    lib.heif_image_release.argtypes = [vp]
    lib.heif_image_get_plane_readonly.restype = ctypes.POINTER(ctypes.c_uint8)
    lib.heif_image_get_plane_readonly.argtypes = [vp, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    lib.heif_image_get_width.argtypes = [vp, ctypes.c_int]
    lib.heif_image_get_height.argtypes = [vp, ctypes.c_int]
    return lib


def _message(err: _Error) -> str:
    return (err.message or b"").decode("utf-8", "replace") or f"libheif error {err.code}"


def strict_heif_error(data: bytes) -> str | None:
    """Why libheif refuses to decode the primary image strictly; None if it decodes
    (or if no libheif can be loaded: then nothing more than pillow-heif is checked)."""
    try:
        decode_heif_strict(data, working_size=0)
    except HeifDamaged as exc:
        return str(exc)
    return None


class HeifDamaged(ValueError):
    """libheif refused the file or its image data in strict mode."""


def decode_heif_strict(data: bytes, working_size: int) -> np.ndarray | None:
    """Upright RGB of the primary image (libheif applies irot/imir), box-reduced to
    within 2x above ``working_size`` (0: decode and check only, return nothing).

    None when no libheif can be loaded (the caller falls back to pillow-heif).
    :exception HeifDamaged: the file or its image data is damaged.
    """
    lib = _libheif()
    if lib is None:
        return None
    ctx = lib.heif_context_alloc()
    handle, image = ctypes.c_void_p(), ctypes.c_void_p()
    options = lib.heif_decoding_options_alloc()
    try:
        err = lib.heif_context_read_from_memory_without_copy(ctx, data, len(data), None)
        if err.code:
            raise HeifDamaged(_message(err))
        err = lib.heif_context_get_primary_image_handle(ctx, ctypes.byref(handle))
        if err.code:
            raise HeifDamaged(_message(err))
        if ctypes.c_uint8.from_address(options).value < _STRICT_VERSION:
            return None  # a libheif too old to decode strictly: pillow-heif decodes
        ctypes.c_uint8.from_address(options + _HDR_TO_8BIT_OFFSET).value = 1
        ctypes.c_uint8.from_address(options + _STRICT_OFFSET).value = 1
        err = lib.heif_decode_image(handle, ctypes.byref(image), _RGB, _INTERLEAVED_RGB, options)
        if err.code:
            raise HeifDamaged(_message(err))
        if working_size <= 0:
            return None
        return _reduced_plane(lib, image, working_size)
    finally:
        if image:
            lib.heif_image_release(image)
        if handle:
            lib.heif_image_handle_release(handle)
        lib.heif_decoding_options_free(options)
        lib.heif_context_free(ctx)


def _reduced_plane(lib: ctypes.CDLL, image: ctypes.c_void_p, working_size: int) -> np.ndarray:
    """A reduced copy of libheif's interleaved RGB plane (read in place, never copied whole)."""
    stride = ctypes.c_int()
    ptr = lib.heif_image_get_plane_readonly(image, _INTERLEAVED_RGB, ctypes.byref(stride))
    w = lib.heif_image_get_width(image, _INTERLEAVED_RGB)
    h = lib.heif_image_get_height(image, _INTERLEAVED_RGB)
    if not ptr or w <= 0 or h <= 0:
        raise HeifDamaged("libheif gave no RGB plane")
    flat = np.ctypeslib.as_array(ptr, shape=(h * stride.value,))
    rgb = np.lib.stride_tricks.as_strided(flat, shape=(h, w, 3), strides=(stride.value, 3, 1))
    factor = max(1, max(w, h) // working_size)
    if factor == 1:
        return np.array(rgb)
    # Pillow's box reduce a strip at a time (strips of whole boxes): the very pixels the
    # other formats get, and only a strip is ever copied out of libheif's plane
    rows = factor * max(1, _STRIP_PIXELS // (w * factor))
    strips = [
        np.asarray(Image.fromarray(np.ascontiguousarray(rgb[top : top + rows])).reduce(factor))
        for top in range(0, h, rows)
    ]
    return strips[0] if len(strips) == 1 else np.concatenate(strips)
