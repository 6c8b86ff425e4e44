"""The picture that shows an auditor why two photos are the same house.

The two photos side by side, each verified inlier of the scene check drawn as a line
from its point in one photo to its point in the other. A chance resemblance gives a
few crossing lines; the same house gives many lines that run in step. It is drawn
from the stored inlier pairs (``photo_matches.evidence``: ``inlier_pairs`` at each
photo's working size, ``size_a`` / ``size_b``; see ``similarity.engine``) on the
upright previews, so nothing is matched again: the page and the offline report show
what the engine verified.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
from PIL import Image

__all__ = ["has_match_points", "match_caption", "render_match_picture"]

GAP = 12  # px between the two photos
MAX_LINES = 200  # beyond this the lines hide the photos; an even sample is drawn


def has_match_points(evidence: dict[str, Any] | None) -> bool:
    """Whether a match's evidence holds what the picture needs."""
    if not evidence:
        return False
    pairs = evidence.get("inlier_pairs")
    return bool(pairs) and bool(evidence.get("size_a")) and bool(evidence.get("size_b"))


def match_caption(a: str, b: str, evidence: dict[str, Any]) -> tuple[str, str]:
    """(Chinese, English) words under the picture: how many points, against what
    threshold, for a county official (the page and the offline report say the same)."""
    n = evidence.get("inliers", len(evidence.get("inlier_pairs") or ()))
    minimum = (evidence.get("thresholds") or {}).get("scene_min_inliers", "?")
    zh = (
        f"{a} 与 {b}：两张照片中有 {n} 个相同的细节点（图中连线，一端在左图、一端在右图）"
        "在位置、方向和大小上都能一一对上，符合同一建筑从不同位置拍摄时的几何关系。"
        f"系统要求至少 {minimum} 个这样的点才判定为同一处房屋；不同房屋通常只有几个偶然相似的点。"
    )
    en = (
        f"{a} and {b}: {n} details of the two photos (the lines, one end in each photo) "
        "agree in place, direction and size as one building seen from two spots would. "
        f"The system needs at least {minimum} such points to call it the same house; "
        "different houses usually share only a few chance points."
    )
    return zh, en


def render_match_picture(
    a: np.ndarray,
    b: np.ndarray,
    evidence: dict[str, Any],
    *,
    height: int = 360,
    quality: int = 85,
) -> bytes:
    """JPEG bytes: RGB images ``a`` and ``b`` (any size: previews) at ``height`` side by
    side, with the evidence's inlier pairs drawn between them.

    :exception ValueError: the evidence has no inlier pairs or working sizes.
    """
    if not has_match_points(evidence):
        msg = "the match has no stored inlier points to draw"
        raise ValueError(msg)
    pairs = np.asarray(evidence["inlier_pairs"], dtype=np.float64).reshape(-1, 4)
    left, sa = _scaled(a, height, evidence["size_a"])
    right, sb = _scaled(b, height, evidence["size_b"])
    width = left.shape[1] + GAP + right.shape[1]
    canvas = np.full((height, width, 3), 255, np.uint8)
    canvas[:, : left.shape[1]] = left
    offset = left.shape[1] + GAP
    canvas[:, offset:] = right
    if len(pairs) > MAX_LINES:
        pairs = pairs[np.linspace(0, len(pairs) - 1, MAX_LINES).round().astype(int)]
    # colour by height in photo a: lines that run in step keep their colours in order
    hues = np.clip(pairs[:, 1] / max(float(evidence["size_a"][1]), 1.0), 0, 1) * 150
    for (xa, ya, xb, yb), hue in zip(pairs, hues, strict=True):
        colour = _hsv(float(hue))
        pa = (round(xa * sa[0]), round(ya * sa[1]))
        pb = (round(xb * sb[0]) + offset, round(yb * sb[1]))
        cv2.line(canvas, pa, pb, colour, 1, cv2.LINE_AA)
        cv2.circle(canvas, pa, 3, colour, -1, cv2.LINE_AA)
        cv2.circle(canvas, pb, 3, colour, -1, cv2.LINE_AA)
    out = io.BytesIO()
    Image.fromarray(canvas).save(out, "JPEG", quality=quality)
    return out.getvalue()


def _scaled(
    image: np.ndarray, height: int, working: Sequence[float]
) -> tuple[np.ndarray, tuple[float, float]]:
    """The image at ``height`` (RGB), and the factors from working-size points to it."""
    rgb = image if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2)
    h, w = rgb.shape[:2]
    new_w = max(1, round(w * height / h))
    resized = cv2.resize(rgb[:, :, :3], (new_w, height), interpolation=cv2.INTER_AREA)
    return resized, (new_w / float(working[0]), height / float(working[1]))


def _hsv(hue: float) -> tuple[int, int, int]:
    pixel = np.array([[[round(hue) % 180, 255, 230]]], dtype=np.uint8)
    r, g, b = np.asarray(cv2.cvtColor(pixel, cv2.COLOR_HSV2RGB))[0, 0]
    return int(r), int(g), int(b)
