"""Entry point: raw bytes (plus what decode found) -> Metadata. Stub, to be filled."""

from __future__ import annotations

from .model import Metadata

__all__ = ["read_metadata"]


def read_metadata(data: bytes, *, exif: bytes | None = None, xmp: bytes | None = None) -> Metadata:
    """Parse all metadata of a photo; never raises for malformed metadata."""
    return Metadata()
