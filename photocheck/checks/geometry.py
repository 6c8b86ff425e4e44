"""TILTED. Stub, to be filled."""

from __future__ import annotations

from . import CheckInput, CheckOutput

__all__ = ["check_tilt"]


def check_tilt(inp: CheckInput) -> CheckOutput:
    return CheckOutput()
