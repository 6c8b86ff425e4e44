"""Plain inputs of the audit, so every algorithm is testable without a database.

Times: ``captured_at`` is the camera's (or the app's) local clock, naive, China time
(DESIGN §4.3); ``uploaded_at`` is an aware UTC instant taken by the server. The two are
never mixed: batches and speeds use capture times, progress uses upload times.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

CHINA_TZ = dt.timezone(dt.timedelta(hours=8), "CST")

__all__ = [
    "CHINA_TZ",
    "AppCapture",
    "HouseholdRecord",
    "MatchRecord",
    "PhotoRecord",
    "ThumbnailCheck",
    "VillageRecord",
]


@dataclass(frozen=True)
class AppCapture:
    """What the entry app said about the capture (the upload's ``capture`` JSON)."""

    in_app: bool = True  # the app's own camera took it (capture ``source: "app_camera"``)
    lat: float | None = None
    lon: float | None = None
    captured_at: dt.datetime | None = None  # naive local China time
    device_id: str | None = None
    source: str | None = None  # the capture JSON's source: app_camera | gallery | None


@dataclass(frozen=True)
class ThumbnailCheck:
    """Result of comparing the embedded EXIF thumbnail with the main image."""

    correlation: float
    mean_abs_diff: float  # 0..255 on normalised 32x32 grey
    matches: bool


@dataclass(frozen=True)
class PhotoRecord:
    """One stored photo as the audit sees it."""

    photo_id: str
    household_id: str
    village_id: str
    town: str
    verifier: str  # the account that uploaded it: "whoever verifies answers for it"
    lat: float | None = None  # camera (EXIF) GPS
    lon: float | None = None
    captured_at: dt.datetime | None = None  # camera DateTimeOriginal, naive local
    uploaded_at: dt.datetime | None = None  # aware UTC
    verdict: str = "accept"  # accept | review | reject
    reasons: tuple[str, ...] = ()  # reason codes of the upload check
    has_camera_metadata: bool = True  # camera EXIF present (make/model or capture time)
    app: AppCapture | None = None
    thumbnail: ThumbnailCheck | None = None
    is_current: bool = True
    head_name: str = ""
    village_name: str = ""

    @property
    def position(self) -> tuple[float, float] | None:
        """Where it was taken: camera GPS, else the app's fix."""
        if self.lat is not None and self.lon is not None:
            return (self.lat, self.lon)
        if self.app is not None and self.app.lat is not None and self.app.lon is not None:
            return (self.app.lat, self.app.lon)
        return None

    @property
    def taken_at(self) -> dt.datetime | None:
        """When it was taken (naive local): camera clock, else the app's clock."""
        if self.captured_at is not None:
            return self.captured_at.replace(tzinfo=None)
        if self.app is not None and self.app.captured_at is not None:
            return self.app.captured_at.replace(tzinfo=None)
        return None


@dataclass(frozen=True)
class VillageRecord:
    village_id: str
    name: str
    town: str
    centre_lat: float | None = None
    centre_lon: float | None = None


@dataclass(frozen=True)
class HouseholdRecord:
    """A registered household and the verdicts of its uploads, for progress."""

    household_id: str
    village_id: str
    uploads: tuple[tuple[dt.datetime, str], ...] = ()  # (uploaded_at aware UTC, verdict)


@dataclass(frozen=True)
class MatchRecord:
    """A stored pair from the similarity index (photo_matches)."""

    photo_id: str
    other_photo_id: str
    relation: str  # same_photo | same_scene
    distance: float | None = None
    evidence: dict | None = None
