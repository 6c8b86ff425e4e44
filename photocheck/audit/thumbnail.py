"""Does the embedded EXIF thumbnail show the same picture as the main image?

Cameras write a small JPEG thumbnail into EXIF when they take the photo. Editors that
replace or retouch the main image often leave the old thumbnail in place, so a
thumbnail that shows another picture is strong evidence the photo is not what the
camera took.

The comparison is done on 32x32 grey images, each normalised to zero mean and unit
variance (so brightness and contrast from re-encoding do not count). The thumbnail is
stored in the sensor's orientation, like the raw main image: it is turned upright
with the same EXIF orientation, and letterbox bars some cameras add (a 4:3 160x120
thumbnail of a 16:9 photo) are cut off by cropping the thumbnail to the main image's
aspect ratio.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image

from ..decode import DecodedPhoto
from .records import ThumbnailCheck

__all__ = [
    "DIFFERENCE_METRIC",
    "MIN_CORRELATION",
    "SIMILARITY_METRIC",
    "compare_thumbnail",
    "thumbnail_check_from_metrics",
    "thumbnail_metrics",
    "thumbnail_signature",
]

# Keys in a stored photo's ``metrics``; present (even as None) = compared at upload.
SIMILARITY_METRIC = "thumbnail_similarity"
DIFFERENCE_METRIC = "thumbnail_difference"

# Calibrated on the developer set (65 JPEGs with an EXIF thumbnail; 5 of them broken
# or flat -> None): the 60 genuine thumbnails correlate 0.901-1.000 with their own
# image (median 0.99); over 3,718 thumbnail-of-another-file pairs (byte-identical files
# excluded) the highest is 0.805 (two 16-100 px test files), 0.79 for real photos,
# and the HDR-on/off pair of one scene 0.75.
MIN_CORRELATION = 0.85
_SIDE = 32
_MAX_THUMBNAIL_PIXELS = 1_000_000  # EXIF thumbnails are 160x120 or so

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def thumbnail_signature(image: Image.Image, *, aspect: float | None = None) -> np.ndarray:
    """32x32 grey, zero mean, unit variance; centre-cropped to ``aspect`` (w/h) first."""
    grey = image.convert("L")
    if aspect is not None:
        grey = _crop_to_aspect(grey, aspect)
    small = np.asarray(grey.resize((_SIDE, _SIDE), Image.Resampling.BOX), dtype=np.float64)
    centred = small - small.mean()
    std = centred.std()
    return centred / std if std > 1e-6 else centred


def _crop_to_aspect(im: Image.Image, aspect: float) -> Image.Image:
    w, h = im.size
    if w == 0 or h == 0 or abs(w / h - aspect) / aspect < 0.03:
        return im
    if w / h > aspect:  # too wide: cut the sides
        new_w = max(1, round(h * aspect))
        left = (w - new_w) // 2
        return im.crop((left, 0, left + new_w, h))
    new_h = max(1, round(w / aspect))
    top = (h - new_h) // 2
    return im.crop((0, top, w, top + new_h))


def _candidates(thumb: Image.Image, main: Image.Image) -> list[Image.Image]:
    """The thumbnail as is, plus both quarter turns when its shape disagrees with the
    main image's: some phones rotate the main pixels and leave the thumbnail sideways
    (kyocera_fcs3_modern_building.jpg), which is the same picture, not a swap."""
    if (thumb.width > thumb.height) == (main.width > main.height):
        return [thumb]
    return [
        thumb,
        thumb.transpose(Image.Transpose.ROTATE_90),
        thumb.transpose(Image.Transpose.ROTATE_270),
    ]


def compare_thumbnail(
    thumbnail: bytes, photo: DecodedPhoto, *, min_correlation: float = MIN_CORRELATION
) -> ThumbnailCheck | None:
    """Compare ``thumbnail`` (EXIF JPEG bytes) with the upright working image.

    Returns None when the thumbnail cannot be decoded or is flat (nothing to compare):
    a broken thumbnail is not evidence of a swapped picture.
    """
    try:
        with Image.open(io.BytesIO(thumbnail), formats=("JPEG",)) as im:
            if im.width * im.height > _MAX_THUMBNAIL_PIXELS:  # 64 KB of JPEG can say 100 MP
                return None
            im.load()
            thumb = im.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    if photo.orientation in _TRANSPOSE:
        thumb = thumb.transpose(_TRANSPOSE[photo.orientation])
    main = Image.fromarray(photo.rgb)
    b = thumbnail_signature(main)
    if not b.any():
        return None
    best: tuple[float, np.ndarray] | None = None
    for candidate in _candidates(thumb, main):
        a = thumbnail_signature(candidate, aspect=main.width / main.height)
        if a.any():
            corr = float((a * b).mean())
            if best is None or corr > best[0]:
                best = (corr, a)
    if best is None:
        return None
    corr, a = best
    # mean abs diff on the normalised images, rescaled to a 0..255-like range
    mad = float(np.abs(a - b).mean() * 255.0 / 4.0)
    return ThumbnailCheck(correlation=corr, mean_abs_diff=mad, matches=corr >= min_correlation)


def thumbnail_metrics(photo: DecodedPhoto | None, thumbnail: bytes | None) -> dict[str, Any]:
    """The comparison as photo metrics, from what the upload check already decoded.

    The upload calls this with ``Report.photo`` and ``Report.metadata.thumbnail`` so the
    audit never decodes the photo a second time. Both keys are always set; None means
    there was nothing to compare (no, broken or flat thumbnail; unreadable photo).
    """
    result = compare_thumbnail(thumbnail, photo) if photo is not None and thumbnail else None
    return {
        SIMILARITY_METRIC: round(result.correlation, 4) if result else None,
        DIFFERENCE_METRIC: round(result.mean_abs_diff, 2) if result else None,
    }


def thumbnail_check_from_metrics(
    metrics: Mapping[str, Any] | None, *, min_correlation: float = MIN_CORRELATION
) -> tuple[bool, ThumbnailCheck | None]:
    """(compared at upload?, the result): the audit's reading of ``thumbnail_metrics``."""
    if not metrics or SIMILARITY_METRIC not in metrics:
        return False, None
    corr = metrics.get(SIMILARITY_METRIC)
    if not isinstance(corr, int | float):
        return True, None
    mad = metrics.get(DIFFERENCE_METRIC)
    mad = float(mad) if isinstance(mad, int | float) else 0.0
    return True, ThumbnailCheck(float(corr), mad, float(corr) >= min_correlation)
