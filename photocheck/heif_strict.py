"""HEIF/HEIC pixel data checked strictly: libheif's strict decoding, through ctypes.

libde265 conceals damaged HEVC data (20 KB of garbage inside a tile decodes to a
plausible, smeared tile) and pillow-heif gives no way to ask for strictness. libheif
itself has it: ``heif_decoding_options.strict_decoding`` turns the decoder's warnings
into an error. pillow-heif's wheels ship that very libheif (``pillow_heif.libs``), so
it is called here directly, once per HEIF photo, before the normal decode.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
from pathlib import Path

import pillow_heif

__all__ = ["strict_heif_error"]

log = logging.getLogger(__name__)

_UNDEFINED = 99  # heif_colorspace_undefined / heif_chroma_undefined: decode as stored
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
    return lib


def _message(err: _Error) -> str:
    return (err.message or b"").decode("utf-8", "replace") or f"libheif error {err.code}"


def strict_heif_error(data: bytes) -> str | None:
    """Why libheif refuses to decode the primary image strictly; None if it decodes
    (or if no libheif can be loaded: then nothing more than pillow-heif is checked)."""
    lib = _libheif()
    if lib is None:
        return None
    ctx = lib.heif_context_alloc()
    handle, image = ctypes.c_void_p(), ctypes.c_void_p()
    options = lib.heif_decoding_options_alloc()
    try:
        err = lib.heif_context_read_from_memory_without_copy(ctx, data, len(data), None)
        if err.code:
            return _message(err)
        err = lib.heif_context_get_primary_image_handle(ctx, ctypes.byref(handle))
        if err.code:
            return _message(err)
        if ctypes.c_uint8.from_address(options).value < _STRICT_VERSION:
            return None  # a libheif too old to decode strictly
        ctypes.c_uint8.from_address(options + _STRICT_OFFSET).value = 1
        err = lib.heif_decode_image(handle, ctypes.byref(image), _UNDEFINED, _UNDEFINED, options)
        return _message(err) if err.code else None
    finally:
        if image:
            lib.heif_image_release(image)
        if handle:
            lib.heif_image_handle_release(handle)
        lib.heif_decoding_options_free(options)
        lib.heif_context_free(ctx)
