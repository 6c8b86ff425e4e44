"""EXIF through exifread: the raw tags, and small typed getters that never raise.

exifread reads a whole JPEG/HEIC file or a bare TIFF block (``II*``/``MM*``, which is
what ``decode`` hands us for every format). Each field is read on its own; a tag that
cannot be read becomes a note, so one broken tag never hides the others.
"""

from __future__ import annotations

import io
import logging
import struct
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import exifread
from exifread.core.exceptions import ExifNotFound, InvalidExif

__all__ = ["ExifTags", "read_exif", "thumbnail", "to_fraction"]

# What exifread raises on damaged blocks even in non-strict mode (seen on the
# corrupt_exif and exif_samples/tests_* files, and on truncated copies of them).
_EXIFREAD_ERRORS = (
    ExifNotFound,
    InvalidExif,
    struct.error,
    IndexError,
    KeyError,
    ValueError,
    TypeError,
    ZeroDivisionError,
    OverflowError,
    UnicodeDecodeError,
    RecursionError,
    MemoryError,
)

# exifread logs a warning for every file without EXIF; that is normal input for us.
logging.getLogger("exifread").setLevel(logging.ERROR)


@dataclass
class ExifTags:
    """exifread's tag dict plus the notes collected while reading it."""

    tags: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __contains__(self, key: str) -> bool:
        return key in self.tags

    @property
    def present(self) -> bool:
        """True when at least one real EXIF tag (not only a thumbnail) was read."""
        return any(k != "JPEGThumbnail" for k in self.tags)

    def values(self, key: str) -> list[Any] | None:
        """The tag's values as a list, or None when absent."""
        tag = self.tags.get(key)
        if tag is None:
            return None
        vals = getattr(tag, "values", tag)
        if isinstance(vals, (str, bytes)):
            return [vals]
        return list(vals)

    def text(self, key: str) -> str | None:
        """A string tag, stripped of padding and NULs; None when absent or empty."""
        tag = self.tags.get(key)
        if tag is None:
            return None
        vals = getattr(tag, "values", tag)
        if isinstance(vals, bytes):
            vals = vals.decode("utf-8", "replace")
        elif not isinstance(vals, str):
            if isinstance(vals, list) and vals and all(isinstance(v, str) for v in vals):
                vals = "".join(vals)
            elif isinstance(vals, list) and vals and all(isinstance(v, int) for v in vals):
                # ASCII stored with the wrong type (seen in corrupt_exif_wrong_type.jpg)
                if not all(0 <= v < 256 for v in vals):
                    self.notes.append(f"{key}: not text ({vals[:8]!r})")
                    return None
                vals = bytes(vals).decode("latin-1")
            else:
                vals = str(getattr(tag, "printable", vals))
        cleaned = vals.replace("\x00", " ").strip()
        return cleaned or None

    def first_int(self, key: str) -> int | None:
        vals = self.values(key)
        if not vals:
            return None
        try:
            return int(vals[0])
        except (TypeError, ValueError):
            self.notes.append(f"{key}: not an integer ({vals[0]!r})")
            return None


def to_fraction(value: Any) -> Fraction:
    """An exifread number (int, Ratio) as a Fraction.

    :exception ZeroDivisionError: a rational with a zero denominator.
    :exception ValueError: not a number.
    """
    num = getattr(value, "numerator", None)
    den = getattr(value, "denominator", None)
    if isinstance(value, Fraction) or (num is not None and den is not None):
        # exifread keeps 1/0 as a Ratio whose float() fails later: refuse it here
        num, den = getattr(value, "_numerator", num), getattr(value, "_denominator", den)
        assert num is not None
        if not den:
            msg = f"{num}/{den} has a zero denominator"
            raise ZeroDivisionError(msg)
        return Fraction(int(num), int(den))
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            msg = f"{value} is not a finite number"
            raise ValueError(msg)
        return Fraction(value)
    msg = f"{value!r} is not a number"
    raise ValueError(msg)


def read_exif(data: bytes, *, exif: bytes | None = None) -> ExifTags:
    """Read EXIF from the decoder's bare TIFF block, or else from the whole file.

    Never raises: an unreadable block becomes a note.
    """
    out = ExifTags()
    sources: list[tuple[str, bytes]] = []
    if exif:
        block = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
        sources.append(("EXIF block", block))
    sources.append(("file", data))
    for label, source in sources:
        try:
            tags = exifread.process_file(io.BytesIO(source), details=False)
        except _EXIFREAD_ERRORS as exc:
            out.notes.append(f"EXIF ({label}) unreadable: {type(exc).__name__}: {exc}")
            continue
        if tags:
            out.tags = dict(tags)
            break
    return out


def thumbnail(tags: ExifTags) -> bytes | None:
    """The embedded JPEG thumbnail, when it really is a JPEG."""
    thumb = tags.tags.get("JPEGThumbnail")
    if not thumb:
        return None
    if not isinstance(thumb, bytes) or not thumb.startswith(b"\xff\xd8"):
        tags.notes.append("JPEGThumbnail: not JPEG data")
        return None
    return thumb
