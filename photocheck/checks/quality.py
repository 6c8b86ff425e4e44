"""TOO_SMALL, BLURRY, TOO_DARK, TOO_BRIGHT. Stub, to be filled."""

from __future__ import annotations

from ..reasons import ReasonCode
from ..verdict import Finding
from . import CheckInput, CheckOutput

__all__ = ["check_quality"]


def check_quality(inp: CheckInput) -> CheckOutput:
    out = CheckOutput()
    q = inp.policy.quality
    out.metrics["megapixels"] = round(inp.photo.pixels / 1e6, 3)
    if inp.photo.pixels < q.min_pixels:
        out.findings.append(
            Finding(ReasonCode.TOO_SMALL, {"width": inp.photo.width, "height": inp.photo.height})
        )
    return out
