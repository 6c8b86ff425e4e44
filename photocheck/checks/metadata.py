"""NO_GPS, GPS_INVALID, GPS_OUTSIDE_AREA, MOCK_LOCATION, NO_CAPTURE_TIME,
CAPTURE_TIME_IMPLAUSIBLE, EDITED: what the photo's metadata says about where, when
and how it was made.

App-side fallbacks (``PhotoContext.app_*``, the phone's own fix and clock sent with the
upload) stand in when the file has no GPS or no usable capture time; the metrics then
name "app" as the source. GPS that is present but impossible stays GPS_INVALID even
with an app fix: a 0,0 or malformed fix in the file is itself worth a look.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..metadata.capture_time import implausibility
from ..metadata.editors import software_kind
from ..metadata.gps import GPSInvalid, check_coordinates, haversine_m
from ..metadata.model import CaptureTime, GPSFix
from ..reasons import ReasonCode
from ..verdict import Finding
from . import CheckInput, CheckOutput, PhotoContext

__all__ = ["check_metadata"]


def check_metadata(inp: CheckInput) -> CheckOutput:
    out = CheckOutput()
    _check_location(inp, out)
    _check_time(inp, out)
    _check_editors(inp, out)
    return out


def _app_fix(ctx: PhotoContext) -> GPSFix | None:
    if ctx.app_lat is None or ctx.app_lon is None:
        return None
    try:
        check_coordinates(ctx.app_lat, ctx.app_lon)
    except GPSInvalid:
        return None
    return GPSFix(lat=ctx.app_lat, lon=ctx.app_lon, source="app", accuracy_m=ctx.app_accuracy_m)


def _point(fix: GPSFix) -> dict[str, Any]:
    return {"lat": fix.lat, "lon": fix.lon, "source": fix.source}


def _check_location(inp: CheckInput, out: CheckOutput) -> None:
    meta, ctx = inp.meta, inp.context
    fix = meta.gps
    if meta.gps_problem is not None:
        out.findings.append(Finding(ReasonCode.GPS_INVALID, {"problem": meta.gps_problem}))
    app = _app_fix(ctx)
    if fix is None and app is not None:
        fix = app
    if fix is None and meta.gps_problem is None:
        out.findings.append(Finding(ReasonCode.NO_GPS, {"exif_gps": "absent", "app_gps": "absent"}))
    out.metrics["gps_source"] = fix.source if fix else None
    if ctx.app_mock_location:
        out.findings.append(
            Finding(
                ReasonCode.MOCK_LOCATION,
                {"app_mock_location": True, **({"app": _point(app)} if app else {})},
            )
        )
    if fix is None or ctx.expected_lat is None or ctx.expected_lon is None:
        return
    radius = ctx.radius_m if ctx.radius_m is not None else inp.policy.area.gps_radius_m
    distance = haversine_m(fix.lat, fix.lon, ctx.expected_lat, ctx.expected_lon)
    out.metrics["gps_distance_m"] = round(distance, 1)
    if distance > radius:
        out.findings.append(
            Finding(
                ReasonCode.GPS_OUTSIDE_AREA,
                {
                    "distance_m": round(distance, 1),
                    "radius_m": radius,
                    "photo": _point(fix),
                    "expected": {"lat": ctx.expected_lat, "lon": ctx.expected_lon},
                },
            )
        )


def _check_time(inp: CheckInput, out: CheckOutput) -> None:
    meta, ctx, policy = inp.meta, inp.context, inp.policy.metadata
    capture = meta.capture_time
    if capture is None and ctx.app_time is not None and ctx.app_time.tzinfo is not None:
        capture = CaptureTime(local=ctx.app_time, source="app", offset=None)
    if capture is None:
        problem = meta.capture_time_problem or "no DateTimeOriginal, DateTimeDigitized or DateTime"
        out.findings.append(Finding(ReasonCode.NO_CAPTURE_TIME, {"problem": problem}))
        out.metrics["capture_time_source"] = None
        return
    out.metrics["capture_time_source"] = capture.source
    if meta.capture_time_problem and capture.source == "app":
        out.metrics["capture_time_exif_problem"] = meta.capture_time_problem
    now = ctx.now or dt.datetime.now(dt.UTC)
    if now.tzinfo is None:  # a caller's naive "now" is read as UTC, the clock's own zone
        now = now.replace(tzinfo=dt.UTC)
    if ctx.app_time is not None and capture.source != "app" and ctx.app_time.tzinfo is not None:
        local = capture.local if capture.local.tzinfo else capture.local.replace(tzinfo=policy.tz)
        out.metrics["app_time_delta_s"] = round((local - ctx.app_time).total_seconds(), 1)
    evidence = implausibility(
        capture,
        now=now,
        tz=policy.tz,
        earliest=policy.earliest_capture,
        future_tolerance=dt.timedelta(minutes=policy.future_tolerance_minutes),
        campaign_start=policy.campaign_start,
        campaign_end=policy.campaign_end,
    )
    if evidence is not None:
        out.findings.append(Finding(ReasonCode.CAPTURE_TIME_IMPLAUSIBLE, evidence))


def _check_editors(inp: CheckInput, out: CheckOutput) -> None:
    meta = inp.meta
    out.metrics["software_kind"] = software_kind(meta.software)
    if meta.editors:
        out.findings.append(
            Finding(ReasonCode.EDITED, {"found": list(meta.editors), "software": meta.software})
        )
