"""Entry point: raw bytes (plus what decode found) -> Metadata.

Each source is read on its own: EXIF (exifread), XMP (defusedxml), Photoshop image
resources. A field that cannot be read is left empty with a note; nothing here raises
for malformed metadata.
"""

from __future__ import annotations

from .capture_time import BadTime, capture_time_from_exif, parse_datetime
from .drone_tags import drone_info
from .editors import classify, find_editors
from .exif import ExifTags, read_exif, thumbnail
from .gps import GPSInvalid, GPSResult, check_coordinates, gps_from_exif, parse_xmp_coordinate
from .model import CaptureTime, GPSFix, Metadata
from .photoshop import photoshop_writer
from .xmp import XmpData, find_xmp_packet, parse_xmp

__all__ = ["read_metadata"]

# XMP dates used only when EXIF has no usable capture time, in this order.
# xmp:CreateDate is left out: editors set it to when a document was created.
XMP_TIME_TAGS = ("exif:DateTimeOriginal", "photoshop:DateCreated")


def read_metadata(data: bytes, *, exif: bytes | None = None, xmp: bytes | None = None) -> Metadata:
    """Parse all metadata of a photo; never raises for malformed metadata.

    ``exif`` is the bare TIFF block and ``xmp`` the XMP packet the decoder found; when
    absent they are looked for in ``data`` itself.
    """
    tags = read_exif(data, exif=exif)
    xmp_data = parse_xmp(xmp or find_xmp_packet(data))
    notes: list[str] = [*xmp_data.notes]

    gps = gps_from_exif(tags)
    if gps.fix is None and gps.problem is None:
        gps = _gps_from_xmp(xmp_data)
    software = tags.text("Image Software")
    times = capture_time_from_exif(tags, saved_by_editor=classify(software) if software else None)
    capture, capture_problem = times.capture, times.problem
    if capture is None and capture_problem is None:
        capture, capture_problem = _time_from_xmp(xmp_data, notes)

    editors = find_editors(software=software, xmp=xmp_data, photoshop_writer=photoshop_writer(data))
    drone = drone_info(xmp_data, gps.fix, notes)
    if (
        gps.fix is None
        and gps.problem is None
        and drone is not None
        and drone.lat is not None
        and drone.lon is not None
    ):
        gps = GPSResult(
            fix=GPSFix(
                lat=drone.lat, lon=drone.lon, altitude_m=drone.absolute_altitude_m, source="xmp"
            )
        )

    notes.extend(tags.notes)
    notes.extend(gps.notes)
    notes.extend(times.notes)
    return Metadata(
        make=tags.text("Image Make") or xmp_data.get("tiff:Make"),
        model=tags.text("Image Model") or xmp_data.get("tiff:Model"),
        software=software,
        creator_tool=xmp_data.get("xmp:CreatorTool"),
        gps=gps.fix,
        gps_problem=gps.problem,
        capture_time=capture,
        capture_time_problem=capture_problem,
        editors=tuple(h.evidence() for h in editors),
        orientation=_orientation(tags),
        drone=drone,
        has_exif=tags.present,
        thumbnail=thumbnail(tags),
        notes=tuple(dict.fromkeys(notes)),  # de-duplicated, in order
    )


def _orientation(tags: ExifTags) -> int:
    value = tags.first_int("Image Orientation")
    if value is None:
        return 1
    if value not in range(1, 9):
        tags.notes.append(f"Orientation: {value} is not 1..8, 1 assumed")
        return 1
    return value


def _gps_from_xmp(xmp: XmpData) -> GPSResult:
    """exif:GPSLatitude/Longitude written into XMP (e.g. by Lightroom), as a fallback."""
    lat_text, lon_text = xmp.get("exif:GPSLatitude"), xmp.get("exif:GPSLongitude")
    if lat_text is None and lon_text is None:
        return GPSResult()
    try:
        if lat_text is None or lon_text is None:
            msg = "XMP has only one of exif:GPSLatitude / exif:GPSLongitude"
            raise GPSInvalid(msg)
        lat, lon = parse_xmp_coordinate(lat_text), parse_xmp_coordinate(lon_text)
        check_coordinates(lat, lon)
    except GPSInvalid as exc:
        return GPSResult(problem=f"XMP GPS: {exc}")
    return GPSResult(fix=GPSFix(lat=round(lat, 7), lon=round(lon, 7), source="xmp"))


def _time_from_xmp(xmp: XmpData, notes: list[str]) -> tuple[CaptureTime | None, str | None]:
    problems = []
    for key in XMP_TIME_TAGS:
        text = xmp.get(key)
        if text is None:
            continue
        try:
            value = parse_datetime(text)
        except BadTime as exc:
            problems.append(f"{key} is {exc}")
            continue
        notes.extend(problems)
        offset = None
        if value.tzinfo is not None:
            z = value.strftime("%z")
            offset = f"{z[:3]}:{z[3:]}"
        return CaptureTime(local=value, source=key, offset=offset), None
    return None, "; ".join(problems) or None
