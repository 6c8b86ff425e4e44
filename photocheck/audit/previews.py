"""Small upright JPEG previews of stored photos, for the audit page and the report."""

from __future__ import annotations

import io

from PIL import Image

from ..decode import decode
from ..errors import DecodeError

__all__ = ["make_preview"]


def make_preview(data: bytes, *, size: int = 320, max_pixels: int = 120_000_000) -> bytes | None:
    """JPEG bytes, longest side ``size``, EXIF orientation applied; None if undecodable."""
    try:
        photo = decode(data, max_pixels=max_pixels, working_size=size)
    except DecodeError:
        return None
    out = io.BytesIO()
    Image.fromarray(photo.rgb).save(out, "JPEG", quality=82)
    return out.getvalue()
