"""Typed metadata of one photo: what EXIF, XMP and the container say.

Each field is parsed on its own; a field that cannot be parsed is left empty and a
note says why, so one bad tag never hides the others.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["CaptureTime", "DroneInfo", "GPSFix", "Metadata"]


@dataclass(frozen=True)
class GPSFix:
    lat: float  # decimal degrees, north positive
    lon: float  # decimal degrees, east positive
    altitude_m: float | None = None  # above sea level; negative below
    source: str = "exif"  # exif | xmp | app
    accuracy_m: float | None = None
    timestamp_utc: dt.datetime | None = None  # GPSDateStamp + GPSTimeStamp, aware UTC


@dataclass(frozen=True)
class CaptureTime:
    """When the picture was taken.

    ``local`` is the camera clock. It is naive unless an offset tag gave its zone: a
    naive value is compared with the campaign window in the policy's local time and
    never stamped as UTC.
    """

    local: dt.datetime
    source: str = "DateTimeOriginal"  # or DateTimeDigitized, DateTime, xmp, app
    offset: str | None = None  # "+08:00" when OffsetTimeOriginal (or similar) says so
    subsec: str | None = None


@dataclass(frozen=True)
class DroneInfo:
    relative_altitude_m: float | None = None
    absolute_altitude_m: float | None = None
    gimbal_yaw: float | None = None
    gimbal_pitch: float | None = None
    gimbal_roll: float | None = None
    flight_yaw: float | None = None
    flight_pitch: float | None = None
    flight_roll: float | None = None
    lat: float | None = None  # drone position: XMP drone tags, else the EXIF GPS fix
    lon: float | None = None
    position_source: str | None = None  # xmp | exif
    vendor: str | None = None  # who wrote the telemetry tags found (DJI, Parrot ...)


@dataclass(frozen=True)
class Metadata:
    make: str | None = None
    model: str | None = None
    software: str | None = None
    creator_tool: str | None = None  # XMP xmp:CreatorTool
    gps: GPSFix | None = None
    gps_problem: str | None = None  # GPS tags present but unusable: why (-> GPS_INVALID)
    capture_time: CaptureTime | None = None
    capture_time_problem: str | None = None  # present but blank/zero/malformed
    editors: tuple[str, ...] = ()  # evidence strings naming an editing program
    orientation: int = 1
    drone: DroneInfo | None = None
    has_exif: bool = False
    thumbnail: bytes | None = field(default=None, repr=False)  # embedded EXIF JPEG thumbnail
    notes: tuple[str, ...] = ()  # fields that could not be parsed, one note each

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (datetimes as ISO strings, no thumbnail bytes)."""
        out = asdict(self)
        out.pop("thumbnail", None)
        out["has_thumbnail"] = self.thumbnail is not None
        return _jsonable(out)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value
