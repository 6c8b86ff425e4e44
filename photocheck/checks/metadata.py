"""NO_GPS, GPS_INVALID, GPS_OUTSIDE_AREA, MOCK_LOCATION, NO_CAPTURE_TIME,
CAPTURE_TIME_IMPLAUSIBLE, EDITED. Stub, to be filled."""

from __future__ import annotations

from . import CheckInput, CheckOutput

__all__ = ["check_metadata"]


def check_metadata(inp: CheckInput) -> CheckOutput:
    return CheckOutput()
