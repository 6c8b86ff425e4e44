"""GPS in decimal degrees: EXIF DMS rationals, XMP coordinates, plausibility, distance.

A fix that is present but impossible is refused with a specific reason (it becomes
GPS_INVALID); a photo with no GPS tags at all has no fix and no reason (NO_GPS).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from fractions import Fraction

from .exif import ExifTags, to_fraction
from .model import GPSFix

__all__ = [
    "GPSInvalid",
    "GPSResult",
    "check_coordinates",
    "gps_from_exif",
    "haversine_m",
    "parse_xmp_coordinate",
]

EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG)
NULL_ISLAND_DEG = 1e-6  # |lat| and |lon| below this: the 0,0 a receiver writes without a fix


class GPSInvalid(ValueError):
    """GPS tags are present but do not make a usable position; the message says why."""


@dataclass
class GPSResult:
    fix: GPSFix | None = None
    problem: str | None = None  # tags present but unusable -> GPS_INVALID
    notes: list[str] = field(default_factory=list)


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres; plenty for a village-sized radius."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dphi, dlmb = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def check_coordinates(lat: float, lon: float) -> None:
    """:exception GPSInvalid: NaN, out of range, or the 0,0 null fix."""
    if not (math.isfinite(lat) and math.isfinite(lon)):
        msg = f"coordinates are not finite numbers ({lat}, {lon})"
        raise GPSInvalid(msg)
    if not -90.0 <= lat <= 90.0:
        msg = f"latitude {lat} is outside -90..90"
        raise GPSInvalid(msg)
    if not -180.0 <= lon <= 180.0:
        msg = f"longitude {lon} is outside -180..180"
        raise GPSInvalid(msg)
    if abs(lat) < NULL_ISLAND_DEG and abs(lon) < NULL_ISLAND_DEG:
        msg = "position is 0,0: the null fix a receiver writes when it has no signal"
        raise GPSInvalid(msg)


def _dms(tags: ExifTags, key: str) -> float:
    """Degrees[, minutes[, seconds]] rationals -> decimal degrees (unsigned)."""
    vals = tags.values(key)
    if not vals or len(vals) > 3:
        msg = f"{key} has {len(vals or [])} values, expected 1 to 3"
        raise GPSInvalid(msg)
    parts: list[Fraction] = []
    for v in vals:
        try:
            parts.append(to_fraction(v))
        except ZeroDivisionError as exc:
            msg = f"{key}: {exc}"
            raise GPSInvalid(msg) from exc
        except ValueError as exc:
            msg = f"{key}: {exc}"
            raise GPSInvalid(msg) from exc
    if any(p < 0 for p in parts):
        msg = f"{key} has a negative component {vals}"
        raise GPSInvalid(msg)
    if any(p >= 60 for p in parts[1:]):
        msg = f"{key} minutes/seconds out of range {vals}"
        raise GPSInvalid(msg)
    scale = (1, 60, 3600)
    return float(sum(p / s for p, s in zip(parts, scale, strict=False)))


def _sign(tags: ExifTags, key: str, positive: str, negative: str, notes: list[str]) -> int:
    ref = tags.text(key)
    if ref is None:
        notes.append(f"{key} missing: {positive} assumed")
        return 1
    ref = ref.upper()[:1]
    if ref == positive:
        return 1
    if ref == negative:
        return -1
    msg = f"{key} is {tags.text(key)!r}, expected {positive} or {negative}"
    raise GPSInvalid(msg)


def _altitude(tags: ExifTags, notes: list[str]) -> float | None:
    vals = tags.values("GPS GPSAltitude")
    if not vals:
        return None
    try:
        alt = float(to_fraction(vals[0]))
    except (ZeroDivisionError, ValueError) as exc:
        notes.append(f"GPSAltitude: {exc}")
        return None
    ref = tags.first_int("GPS GPSAltitudeRef")
    return -alt if ref == 1 else alt  # ref 1 = below sea level


def _timestamp(tags: ExifTags, notes: list[str]) -> dt.datetime | None:
    date = tags.text("GPS GPSDate")
    hms = tags.values("GPS GPSTimeStamp")
    if not date or not hms:
        return None
    try:
        day = dt.datetime.strptime(date[:10], "%Y:%m:%d").date()
        h, m, s = (to_fraction(v) for v in hms[:3])
        seconds = float(h * 3600 + m * 60 + s)
        if not 0 <= seconds < 86_401:
            msg = f"time of day {hms} out of range"
            raise ValueError(msg)
    except (ValueError, ZeroDivisionError) as exc:
        notes.append(f"GPSDateStamp/GPSTimeStamp: {exc}")
        return None
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return start + dt.timedelta(seconds=seconds)


def _accuracy(tags: ExifTags, notes: list[str]) -> float | None:
    for key in ("GPS GPSHPositioningError", "GPS Tag 0x001F"):
        vals = tags.values(key)
        if vals:
            try:
                return float(to_fraction(vals[0]))
            except (ZeroDivisionError, ValueError) as exc:
                notes.append(f"GPSHPositioningError: {exc}")
    return None


def gps_from_exif(tags: ExifTags) -> GPSResult:
    """EXIF GPS IFD -> fix, or the reason it is unusable, or nothing (no GPS tags)."""
    out = GPSResult()
    has_lat, has_lon = "GPS GPSLatitude" in tags, "GPS GPSLongitude" in tags
    if not has_lat and not has_lon:
        return out
    try:
        if not (has_lat and has_lon):
            missing = "GPSLongitude" if has_lat else "GPSLatitude"
            msg = f"{missing} is missing"
            raise GPSInvalid(msg)
        lat = _dms(tags, "GPS GPSLatitude") * _sign(tags, "GPS GPSLatitudeRef", "N", "S", out.notes)
        lon = _dms(tags, "GPS GPSLongitude") * _sign(
            tags, "GPS GPSLongitudeRef", "E", "W", out.notes
        )
        check_coordinates(lat, lon)
    except GPSInvalid as exc:
        out.problem = str(exc)
        return out
    out.fix = GPSFix(
        lat=round(lat, 7),
        lon=round(lon, 7),
        altitude_m=_altitude(tags, out.notes),
        source="exif",
        accuracy_m=_accuracy(tags, out.notes),
        timestamp_utc=_timestamp(tags, out.notes),
    )
    return out


# XMP writes EXIF GPS as "DDD,MM.mmk" or "DDD,MM,SSk" (k = N/S/E/W); DJI as "+47.35".
_XMP_DMS = re.compile(r"^\s*(\d{1,3}),(\d{1,2}(?:\.\d+)?)(?:,(\d{1,2}(?:\.\d+)?))?\s*([NSEW])\s*$")


def parse_xmp_coordinate(text: str) -> float:
    """An XMP coordinate in decimal degrees (signed).

    :exception GPSInvalid: not a coordinate.
    """
    m = _XMP_DMS.match(text.upper())
    if m:
        deg, minutes, seconds, ref = m.groups()
        value = int(deg) + float(minutes) / 60 + float(seconds or 0) / 3600
        return -value if ref in "SW" else value
    try:
        value = float(text)
    except ValueError:
        msg = f"{text!r} is not a coordinate"
        raise GPSInvalid(msg) from None
    return value
