"""Where and when a household's photo should have been taken: the checks' context.

One rule for the upload (from the app's capture JSON as it arrives) and for the
look-back re-check (from the capture JSON stored with the photo), so a photo re-checked
under the same policy is judged exactly as at its upload.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from ..checks import PhotoContext
from .models import Household

__all__ = ["photo_context"]


def photo_context(
    household: Household, capture: Mapping[str, Any] | None, radius_m: float | None
) -> PhotoContext:
    """The household's point, else its village's centre; the app's fix and clock as
    fallbacks. ``capture``: the capture JSON (``device_time`` ISO 8601 with its offset,
    as stored); ``household.village`` must be loaded."""
    village = household.village
    lat, lon = household.lat, household.lon
    if lat is None or lon is None:
        lat, lon = village.centre_lat, village.centre_lon
    capture = capture or {}
    when = capture.get("device_time")
    return PhotoContext(
        expected_lat=lat,
        expected_lon=lon,
        radius_m=radius_m,
        app_mock_location=bool(capture.get("mock_location")),
        app_lat=_number(capture.get("lat")),
        app_lon=_number(capture.get("lon")),
        app_accuracy_m=_number(capture.get("accuracy_m")),
        app_time=dt.datetime.fromisoformat(when) if isinstance(when, str) else when,
    )


def _number(value: Any) -> float | None:
    return None if value is None else float(value)
