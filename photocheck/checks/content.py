"""NO_HOUSE and SCREEN_PHOTO, from the content model plus two pixel statistics.

``house_score`` = building mass + half the street-context mass (model.py says why).
NO_HOUSE fires below ``content.house_min_score``.

``screen_score`` is the model's mass on screens, documents, signs and graphics.
SCREEN_PHOTO fires above ``content.screen_max_score``, or above the lower
``content.graphics_screen_max_score`` when the pixels also look synthetic: a large
share of perfectly flat pixels (exact zero gradient) is what screenshots and diagrams
have and camera photos, with their sensor noise, do not. Dark frames are flat too, so
near-black pixels do not count as flat. The pixel statistics are reported in
``metrics`` for the county's review either way.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..reasons import ReasonCode
from ..verdict import Finding
from . import CheckInput, CheckOutput

__all__ = ["STREET_WEIGHT", "check_content", "flat_fraction", "house_score"]

STREET_WEIGHT = 0.5
DARK_LEVEL = 24  # grey levels below this are not counted as flat (dark frames)


def house_score(building: float, street: float) -> float:
    return building + STREET_WEIGHT * street


def flat_fraction(grey: np.ndarray) -> float:
    """Share of non-dark pixels whose right and lower neighbours are exactly equal."""
    if grey.shape[0] < 2 or grey.shape[1] < 2:
        return 0.0
    core = grey[:-1, :-1]
    dx = cv2.absdiff(core, grey[:-1, 1:])
    dy = cv2.absdiff(core, grey[1:, :-1])
    lit = core >= DARK_LEVEL
    n = int(np.count_nonzero(lit))
    if n == 0:
        return 0.0
    flat = np.count_nonzero(lit & (dx == 0) & (dy == 0))
    return flat / n


def check_content(inp: CheckInput) -> CheckOutput:
    scores, pol = inp.scores, inp.policy.content
    house = house_score(scores.building, scores.street)
    flat = flat_fraction(inp.photo.grey)
    top = [list(t) for t in scores.top]
    metrics = {
        "building_score": round(scores.building, 4),
        "street_score": round(scores.street, 4),
        "house_score": round(house, 4),
        "screen_score": round(scores.screen, 4),
        "flat_fraction": round(flat, 4),
        "top_labels": top,
    }
    findings: list[Finding] = []
    graphics = flat >= pol.graphics_min_flat_fraction
    if scores.screen > pol.screen_max_score or (
        graphics and scores.screen > pol.graphics_screen_max_score
    ):
        evidence = {
            "screen_score": metrics["screen_score"],
            "flat_fraction": metrics["flat_fraction"],
            "top_labels": top[:3],
        }
        findings.append(Finding(ReasonCode.SCREEN_PHOTO, evidence))
    if inp.context.check_framing and house < pol.house_min_score:
        evidence = {
            "house_score": metrics["house_score"],
            "house_min_score": pol.house_min_score,
            "top_labels": top[:3],
        }
        findings.append(Finding(ReasonCode.NO_HOUSE, evidence))
    return CheckOutput(findings=findings, metrics=metrics)
