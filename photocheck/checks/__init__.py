"""The check contract and the ordered registry of checks.

A check is a plain function ``(CheckInput) -> CheckOutput``: it reads the shared
decoded pixels, metadata and model scores, and returns findings plus the numbers it
measured (they go into the report's ``metrics``). Checks never raise for a bad photo.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..decode import DecodedPhoto
from ..metadata import Metadata
from ..model import ContentScores
from ..policy import Policy
from ..verdict import Finding

__all__ = ["CHECKS", "Check", "CheckInput", "CheckOutput", "PhotoContext"]


@dataclass(frozen=True)
class PhotoContext:
    """What the caller knows about where and when the photo should have been taken."""

    expected_lat: float | None = None
    expected_lon: float | None = None
    radius_m: float | None = None  # None: the policy's area.gps_radius_m
    now: dt.datetime | None = None  # aware; None: the real clock
    check_framing: bool = True  # drone/site photos skip NO_HOUSE and TILTED
    app_mock_location: bool = False
    # App-side fallbacks from the upload (the phone's own fix and clock), used when the
    # photo's metadata lacks GPS / capture time; reports then name "app" as the source.
    app_lat: float | None = None
    app_lon: float | None = None
    app_accuracy_m: float | None = None
    app_time: dt.datetime | None = None  # aware


@dataclass(frozen=True)
class CheckInput:
    photo: DecodedPhoto
    meta: Metadata
    scores: ContentScores
    policy: Policy
    context: PhotoContext = PhotoContext()


@dataclass
class CheckOutput:
    findings: list[Finding] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)


Check = Callable[[CheckInput], CheckOutput]


def _registry() -> tuple[Check, ...]:
    from .content import check_content
    from .geometry import check_tilt
    from .metadata import check_metadata
    from .quality import check_quality

    return (check_quality, check_content, check_tilt, check_metadata)


CHECKS: tuple[Check, ...] = _registry()
