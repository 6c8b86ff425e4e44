"""Drone telemetry from XMP, as fallback tables in the ODM style.

Each field lists the tags that may hold it, the device that writes it named beside
each; the first tag present wins. Position falls back to the EXIF GPS fix, which DJI
also writes (and is the only source on drones without ``drone-dji:GpsLatitude``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .gps import GPSInvalid, check_coordinates, parse_xmp_coordinate
from .model import DroneInfo, GPSFix
from .xmp import XmpData

__all__ = ["DRONE_TAGS", "drone_info"]

Table = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class _Tables:
    latitude: Table = (
        ("drone-dji:GpsLatitude", "DJI"),
        ("drone-dji:Latitude", "DJI (older firmware)"),
        ("Camera:GPSLatitude", "Parrot Sequoia / Sentera"),
    )
    longitude: Table = (
        ("drone-dji:GpsLongitude", "DJI"),
        ("drone-dji:GpsLongtitude", "DJI (vendor misspelling, Phantom 4 / M210 firmware)"),
        ("drone-dji:Longitude", "DJI (older firmware)"),
        ("Camera:GPSLongitude", "Parrot Sequoia / Sentera"),
    )
    relative_altitude: Table = (
        ("drone-dji:RelativeAltitude", "DJI"),
        ("Camera:AboveGroundAltitude", "Sentera"),
        ("drone-parrot:RelativeAltitude", "Parrot Anafi"),
    )
    absolute_altitude: Table = (
        ("drone-dji:AbsoluteAltitude", "DJI"),
        ("Camera:GPSAltitude", "Parrot Sequoia"),
    )
    gimbal_yaw: Table = (
        ("drone-dji:GimbalYawDegree", "DJI"),
        ("drone-parrot:CameraYawDegree", "Parrot Anafi"),
        ("Camera:Yaw", "senseFly / Pix4D / Sentera"),
    )
    gimbal_pitch: Table = (
        ("drone-dji:GimbalPitchDegree", "DJI"),
        ("drone-parrot:CameraPitchDegree", "Parrot Anafi"),
        ("Camera:Pitch", "senseFly / Pix4D / Sentera"),
    )
    gimbal_roll: Table = (
        ("drone-dji:GimbalRollDegree", "DJI"),
        ("drone-parrot:CameraRollDegree", "Parrot Anafi"),
        ("Camera:Roll", "senseFly / Pix4D / Sentera"),
    )
    flight_yaw: Table = (
        ("drone-dji:FlightYawDegree", "DJI"),
        ("drone-parrot:FlightYawDegree", "Parrot Anafi"),
    )
    flight_pitch: Table = (
        ("drone-dji:FlightPitchDegree", "DJI"),
        ("drone-parrot:FlightPitchDegree", "Parrot Anafi"),
    )
    flight_roll: Table = (
        ("drone-dji:FlightRollDegree", "DJI"),
        ("drone-parrot:FlightRollDegree", "Parrot Anafi"),
    )


DRONE_TAGS = _Tables()
_NUMERIC_FIELDS = (
    "relative_altitude_m",
    "absolute_altitude_m",
    "gimbal_yaw",
    "gimbal_pitch",
    "gimbal_roll",
    "flight_yaw",
    "flight_pitch",
    "flight_roll",
)


def _number(xmp: XmpData, table: Table, notes: list[str]) -> tuple[float | None, str | None]:
    """First parseable value in the table, with the vendor that wrote it."""
    for key, vendor in table:
        text = xmp.get(key)
        if text is None:
            continue
        try:
            value = float(text)
        except ValueError:
            notes.append(f"{key}: not a number ({text!r})")
            continue
        if not math.isfinite(value):
            notes.append(f"{key}: not finite ({text!r})")
            continue
        return value, vendor
    return None, None


def _position(xmp: XmpData, notes: list[str]) -> tuple[float, float] | None:
    lat_hit = next((xmp.get(k) for k, _ in DRONE_TAGS.latitude if xmp.get(k)), None)
    lon_hit = next((xmp.get(k) for k, _ in DRONE_TAGS.longitude if xmp.get(k)), None)
    if lat_hit is None or lon_hit is None:
        return None
    try:
        lat, lon = parse_xmp_coordinate(lat_hit), parse_xmp_coordinate(lon_hit)
        check_coordinates(lat, lon)
    except GPSInvalid as exc:
        notes.append(f"drone XMP position: {exc}")
        return None
    return lat, lon


def drone_info(xmp: XmpData, exif_gps: GPSFix | None, notes: list[str]) -> DroneInfo | None:
    """DroneInfo when the XMP carries any drone telemetry, else None."""
    t = DRONE_TAGS
    tables = (
        t.relative_altitude,
        t.absolute_altitude,
        t.gimbal_yaw,
        t.gimbal_pitch,
        t.gimbal_roll,
        t.flight_yaw,
        t.flight_pitch,
        t.flight_roll,
    )
    values: dict[str, float | None] = {}
    vendor = None
    for name, table in zip(_NUMERIC_FIELDS, tables, strict=True):
        values[name], found_by = _number(xmp, table, notes)
        vendor = vendor or found_by
    position = _position(xmp, notes)
    if vendor is None and position is None:
        return None
    lat: float | None
    lon: float | None
    source: str | None
    if position is not None:
        lat, lon, source = position[0], position[1], "xmp"
    elif exif_gps is not None:
        lat, lon, source = exif_gps.lat, exif_gps.lon, "exif"
    else:
        lat = lon = source = None
    return DroneInfo(
        **values,
        lat=lat,
        lon=lon,
        position_source=source,
        vendor=vendor or "unknown",
    )
