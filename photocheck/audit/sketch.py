"""Inline SVG drawings for the audit page and the offline report: no JavaScript, no
map tiles (villages are often offline), just what an official needs to see at a glance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from .geo import haversine_m
from .progress import ProgressRow

__all__ = ["SketchPoint", "position_sketch", "progress_bars"]

_M_PER_DEG = 111_195.0


@dataclass(frozen=True)
class SketchPoint:
    lat: float
    lon: float
    label: str


def position_sketch(
    points: Sequence[SketchPoint],
    centre: tuple[float, float] | None,
    *,
    size: int = 320,
    centre_label: str = "村中心",
) -> str:
    """GPS points around the village centre, north up, with a scale bar in metres."""
    if not points and centre is None:
        return ""
    ref = centre or (points[0].lat, points[0].lon)
    kx = _M_PER_DEG * math.cos(math.radians(ref[0]))
    xy = [((p.lon - ref[1]) * kx, (p.lat - ref[0]) * _M_PER_DEG) for p in points]
    extent = max([50.0, *(max(abs(x), abs(y)) for x, y in xy)]) * 1.25
    half = size / 2

    def px(x: float, y: float) -> tuple[float, float]:
        return half + x / extent * (half - 12), half - y / extent * (half - 12)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
        f'viewBox="0 0 {size} {size}" role="img" class="sketch">',
        f'<rect width="{size}" height="{size}" fill="#f7f7f2" stroke="#999"/>',
        f'<text x="{size - 14}" y="16" font-size="12" text-anchor="middle">N↑</text>',
    ]
    if centre is not None:
        cx, cy = px(0, 0)
        parts.append(
            f'<g><rect x="{cx - 5:.1f}" y="{cy - 5:.1f}" width="10" height="10" fill="#555"/>'
            f'<text x="{cx + 8:.1f}" y="{cy + 4:.1f}" font-size="11">{escape(centre_label)}</text>'
            "</g>"
        )
    for i, ((x, y), p) in enumerate(zip(xy, points, strict=True)):
        qx, qy = px(x, y)
        dist = haversine_m(ref[0], ref[1], p.lat, p.lon)
        parts.append(
            f'<g><circle cx="{qx:.1f}" cy="{qy:.1f}" r="6" fill="#d33" fill-opacity="0.7">'
            f"<title>{escape(p.label)}: {dist:.0f} m</title></circle>"
            f'<text x="{qx + 7:.1f}" y="{qy - 6:.1f}" font-size="11">{i + 1}</text></g>'
        )
    bar_m = _nice(extent / 2)
    bar_px = bar_m / extent * (half - 12)
    label = f"{bar_m / 1000:g} km" if bar_m >= 1000 else f"{bar_m:g} m"
    parts.append(
        f'<line x1="10" y1="{size - 12}" x2="{10 + bar_px:.1f}" y2="{size - 12}" '
        f'stroke="#000" stroke-width="2"/>'
        f'<text x="10" y="{size - 16}" font-size="11">{label}</text></svg>'
    )
    return "".join(parts)


def _nice(x: float) -> float:
    """1, 2 or 5 times a power of ten, at most ``x``."""
    p = 10 ** math.floor(math.log10(x))
    return max(m * p for m in (1, 2, 5) if m * p <= x)


def progress_bars(rows: Sequence[ProgressRow], *, width: int = 640, bar: int = 22) -> str:
    """One stacked horizontal bar per town: accepted, in review, retake, no photo."""
    colours = [("accepted", "#2e8b57"), ("review", "#e0a800"), ("retake", "#d33"),
               ("no_photo", "#ccc")]  # fmt: skip
    label_w, gap = 110, 6
    height = len(rows) * (bar + gap) + 4
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" class="bars">'
    ]
    span = width - label_w - 60
    for i, r in enumerate(rows):
        y = i * (bar + gap) + 2
        parts.append(
            f'<text x="{label_w - 6}" y="{y + bar * 0.7:.1f}" font-size="13" '
            f'text-anchor="end">{escape(r.town)}</text>'
        )
        x = float(label_w)
        for attr, colour in colours:
            n = getattr(r, attr)
            w = span * n / r.total if r.total else 0.0
            if w > 0:
                parts.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar}" fill="{colour}">'
                    f"<title>{attr}: {n}</title></rect>"
                )
            x += w
        parts.append(
            f'<text x="{label_w + span + 6}" y="{y + bar * 0.7:.1f}" font-size="13">'
            f"{r.pct_done:.1f}%</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
