"""NO_HOUSE, SCREEN_PHOTO. Stub, to be filled."""

from __future__ import annotations

from . import CheckInput, CheckOutput

__all__ = ["check_content"]


def check_content(inp: CheckInput) -> CheckOutput:
    return CheckOutput(metrics={"building_score": round(inp.scores.building, 4)})
