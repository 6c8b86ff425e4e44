"""TOO_SMALL, BLURRY, TOO_DARK, TOO_BRIGHT, measured on the shared working-size grey image.

Sharpness is local, not one global Laplacian variance: a house front photographed with
a blurred background, or a plain wall under open sky, has few sharp regions, and a
global number mixes them with the flat ones. Instead, for each of four directions
(horizontal, vertical, two diagonals) we take the tiles with the strongest structure in
that direction and measure how abrupt their edges are:

    ratio = sum |I(p+u) - 2 I(p) + I(p-u)| / sum |I(p+u) - I(p-u)|

A step edge gives a large second difference next to its first difference; the same edge
spread over w pixels gives a second difference ~1/w as large. The ratio does not depend
on contrast or brightness. Sharpness is the smallest of the four directional ratios, so
a photo shaken in one direction is caught even though its edges along the shake stay
sharp. A direction with no structure at all (a plain wall, sky) is not judged, and a
photo with no structure in any direction gets no BLURRY finding: there is nothing to be
out of focus.

Exposure uses percentiles of luminance rather than the mean alone: an under-exposed
photo has no highlights (its 95th percentile stays low), an over-exposed one has no
shadows (its 5th percentile is high) or large clipped areas.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..policy import QualityPolicy
from ..reasons import ReasonCode
from ..verdict import Finding
from . import CheckInput, CheckOutput

__all__ = ["Exposure", "check_quality", "measure_exposure", "measure_sharpness"]

TILE = 64  # pixels of the working image (800 px long side: about 12x9 tiles)
TOP_TILES = 0.10  # share of tiles, per direction, with the strongest structure
MIN_TOP_TILES = 3
COARSE = 4  # half-span, in pixels, of the blur-proof difference that finds structure
_DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))


@dataclass(frozen=True)
class Exposure:
    brightness: float  # mean luminance, 0-255
    shadow: float  # 5th percentile of luminance
    highlight: float  # 95th percentile of luminance
    dark_fraction: float  # share of pixels below 30
    bright_fraction: float  # share of pixels at 250 or above (clipped)


def check_quality(inp: CheckInput) -> CheckOutput:
    out = CheckOutput()
    q = inp.policy.quality
    photo = inp.photo
    out.metrics["megapixels"] = round(photo.pixels / 1e6, 3)
    if photo.pixels < q.min_pixels:
        out.findings.append(
            Finding(
                ReasonCode.TOO_SMALL,
                {"width": photo.width, "height": photo.height, "min_pixels": q.min_pixels},
            )
        )
    sharpness = measure_sharpness(photo.grey, q.blur_min_tile_contrast)
    out.metrics["sharpness"] = None if sharpness is None else round(sharpness, 4)
    if sharpness is not None and sharpness < q.blur_min_sharpness:
        out.findings.append(
            Finding(
                ReasonCode.BLURRY,
                {"sharpness": round(sharpness, 4), "min_sharpness": q.blur_min_sharpness},
            )
        )
    exposure = measure_exposure(photo.grey)
    out.metrics.update({k: round(v, 4) for k, v in vars(exposure).items()})
    out.findings.extend(_exposure_findings(exposure, q))
    return out


def measure_sharpness(grey: np.ndarray, min_tile_contrast: float) -> float | None:
    """Smallest directional edge-abruptness ratio (see module doc); None: nothing to judge.

    Whether a direction has structure at all is decided on a coarse scale (differences
    over 2 * COARSE pixels), which blur does not erase: an edge smeared by shake still
    has its full contrast there, only its fine-scale abruptness is gone. So a photo
    shaken sideways is judged sideways too, while a plain wall or sky is not judged.
    ``min_tile_contrast`` is the mean coarse |difference| (grey levels) the strongest
    tiles of a direction must reach for that direction to count. The ratio itself is
    taken on the tiles with the steepest fine-scale edges, i.e. the sharpest part of
    the photo, so a sharp house in front of a blurred background is sharp.
    """
    m = COARSE
    ny, nx = (grey.shape[0] - 2 * m) // TILE, (grey.shape[1] - 2 * m) // TILE
    if ny < 1 or nx < 1:
        return None
    # crop to whole tiles (plus the margin the shifts need), so no later step copies
    g = grey[: ny * TILE + 2 * m, : nx * TILE + 2 * m].astype(np.float32)
    centre = _shifted(g, 0, 0)
    twice_centre = cv2.add(centre, centre)
    ratios = []
    for dy, dx in _DIRECTIONS:
        coarse = cv2.absdiff(_shifted(g, m * dy, m * dx), _shifted(g, -m * dy, -m * dx))
        ahead, behind = _shifted(g, dy, dx), _shifted(g, -dy, -dx)
        structure = _tile_means(coarse)
        first = _tile_means(cv2.absdiff(ahead, behind))
        second = _tile_means(cv2.absdiff(cv2.add(ahead, behind), twice_centre))
        k = max(MIN_TOP_TILES, round(first.size * TOP_TILES))
        if first.size < k:
            continue
        if np.partition(structure, structure.size - k)[-k:].mean() < min_tile_contrast:
            continue  # no structure in this direction
        # judge the tiles with the steepest edges: the in-focus subject, not the bokeh
        strongest = np.argpartition(first, first.size - k)[-k:]
        ratios.append(float(second[strongest].sum() / max(first[strongest].sum(), 1e-6)))
    return min(ratios) if ratios else None


def _shifted(g: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``g`` moved by (dy, dx), cropped by COARSE on every side so all shifts align."""
    h, w = g.shape
    m = COARSE
    return g[m + dy : h - m + dy, m + dx : w - m + dx]


def measure_exposure(grey: np.ndarray) -> Exposure:
    """Luminance statistics of the working image."""
    counts = np.bincount(grey.ravel(), minlength=256).astype(np.float64)
    total = counts.sum()
    cumulative = np.cumsum(counts) / total
    levels = np.arange(256)
    return Exposure(
        brightness=float((counts * levels).sum() / total),
        shadow=float(np.searchsorted(cumulative, 0.05)),
        highlight=float(np.searchsorted(cumulative, 0.95)),
        dark_fraction=float(counts[:30].sum() / total),
        bright_fraction=float(counts[250:].sum() / total),
    )


def _exposure_findings(e: Exposure, q: QualityPolicy) -> list[Finding]:
    findings = []
    if e.highlight < q.dark_max_highlight:
        findings.append(
            Finding(
                ReasonCode.TOO_DARK,
                {"highlight": e.highlight, "max_highlight": q.dark_max_highlight},
            )
        )
    elif e.shadow > q.bright_min_shadow or e.bright_fraction > q.bright_max_clipped:
        # elif: a near-uniform mid-grey frame meets both tests; one reason is enough
        findings.append(
            Finding(
                ReasonCode.TOO_BRIGHT,
                {
                    "shadow": e.shadow,
                    "bright_fraction": round(e.bright_fraction, 4),
                    "min_shadow": q.bright_min_shadow,
                    "max_clipped": q.bright_max_clipped,
                },
            )
        )
    return findings


def _tile_means(a: np.ndarray) -> np.ndarray:
    """Mean of each TILE x TILE block of ``a`` (whole tiles): exact area resampling."""
    h, w = a.shape
    return cv2.resize(a, (w // TILE, h // TILE), interpolation=cv2.INTER_AREA).ravel()
