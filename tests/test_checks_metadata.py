"""check_metadata: GPS, area, mock location, capture time (with a fixed clock), EDITED."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from typing import Any

import pytest

from photocheck.checks import CheckInput, CheckOutput, PhotoContext
from photocheck.checks.metadata import check_metadata
from photocheck.decode import DecodedPhoto, decode
from photocheck.errors import DecodeError
from photocheck.metadata import CaptureTime, Metadata, read_metadata
from photocheck.model import ContentScores
from photocheck.policy import MetadataPolicy, Policy

from .conftest import data_file, load_expectations

CHINA = dt.timezone(dt.timedelta(hours=8))
NOW = dt.datetime(2020, 6, 15, 13, 0, tzinfo=dt.UTC)  # 21:00 in China
SCORES = ContentScores(building=0.5, screen=0.0)
GUANGZHOU = "exif/phones_gps/iphone8_IMG_1034_gps_guangzhou.heic"  # 23.1779N 113.3943E
MINE = {"NO_GPS", "GPS_INVALID", "NO_CAPTURE_TIME", "CAPTURE_TIME_IMPLAUSIBLE", "EDITED"}


@functools.lru_cache(maxsize=4)
def _decoded(relpath: str, max_pixels: int) -> tuple[bytes, DecodedPhoto]:
    """A photo's bytes and decode, once for the tests that check it in several
    contexts (a HEIC costs ~1 s of CPU to decode; the Guangzhou one is checked 7 times)."""
    data = data_file(relpath).read_bytes()
    photo = decode(data, max_pixels=max_pixels)
    photo.rgb.setflags(write=False)
    photo.grey.setflags(write=False)
    return data, photo


def run(relpath: str, policy: Policy, **context: Any) -> CheckOutput:
    data, photo = _decoded(relpath, policy.quality.max_pixels)
    meta = read_metadata(data, exif=photo.exif, xmp=photo.xmp)
    ctx = PhotoContext(**{"now": NOW, **context})
    return check_metadata(
        CheckInput(photo=photo, meta=meta, scores=SCORES, policy=policy, context=ctx)
    )


def run_meta(meta: Metadata, policy: Policy, **context: Any) -> CheckOutput:
    _, photo = _decoded("exif/exifr_misc/noexif.jpg", 10**8)
    ctx = PhotoContext(**{"now": NOW, **context})
    return check_metadata(
        CheckInput(photo=photo, meta=meta, scores=SCORES, policy=policy, context=ctx)
    )


def codes(out: CheckOutput) -> set[str]:
    return {f.code.value for f in out.findings}


def finding(out: CheckOutput, code: str) -> dict:
    return next(f.evidence for f in out.findings if f.code.value == code)


ROWS = [e for e in load_expectations() if (e.all_of | e.none_of | e.any_of) & MINE]


@pytest.mark.parametrize("exp", ROWS, ids=[e.relpath for e in ROWS])
def test_expected_metadata_codes(exp, policy: Policy) -> None:
    """Every EXPECTED.tsv row about these codes, under the real clock as in production."""
    try:
        out = run(exp.relpath, policy, now=None)
    except DecodeError:
        pytest.skip("not decodable: UNREADABLE is the decoder's finding")
    got = codes(out)
    assert (exp.all_of & MINE) <= got, f"missing {sorted((exp.all_of & MINE) - got)}"
    assert not (exp.none_of & got), f"unexpected {sorted(exp.none_of & got)}"


def test_expected_rows_cover_the_codes() -> None:
    assert len(ROWS) >= 80


# ---- location ----------------------------------------------------------------------------


def test_gps_inside_and_outside_area(policy: Policy) -> None:
    near = run(GUANGZHOU, policy, expected_lat=23.18, expected_lon=113.40)
    assert "GPS_OUTSIDE_AREA" not in codes(near)
    assert near.metrics["gps_distance_m"] < 1000 and near.metrics["gps_source"] == "exif"
    far = run(GUANGZHOU, policy, expected_lat=23.27, expected_lon=113.39)  # ~10 km north
    ev = finding(far, "GPS_OUTSIDE_AREA")
    assert 9_000 < ev["distance_m"] < 11_000 and ev["radius_m"] == policy.area.gps_radius_m
    assert ev["photo"]["lat"] == pytest.approx(23.178, abs=1e-3)
    assert ev["expected"] == {"lat": 23.27, "lon": 113.39}
    wide = run(GUANGZHOU, policy, expected_lat=23.27, expected_lon=113.39, radius_m=20_000)
    assert "GPS_OUTSIDE_AREA" not in codes(wide)


def test_policy_radius_is_used(policy: Policy) -> None:
    from photocheck.policy import AreaPolicy

    tight = policy.replace(area=AreaPolicy(gps_radius_m=100.0))
    out = run(GUANGZHOU, tight, expected_lat=23.18, expected_lon=113.40)
    assert finding(out, "GPS_OUTSIDE_AREA")["radius_m"] == 100.0


def test_mock_location(policy: Policy) -> None:
    assert "MOCK_LOCATION" in codes(run(GUANGZHOU, policy, app_mock_location=True))
    assert "MOCK_LOCATION" not in codes(run(GUANGZHOU, policy))


def test_zero_zero_is_invalid_not_missing(policy: Policy) -> None:
    out = run("exif/gps_anomalies/samsung_i9000_gps_0_0.jpg", policy)
    assert "GPS_INVALID" in codes(out) and "NO_GPS" not in codes(out)
    assert "0,0" in finding(out, "GPS_INVALID")["problem"]


def test_app_fallbacks_replace_missing_metadata(policy: Policy) -> None:
    bare = run("exif/exifr_misc/noexif.jpg", policy)
    assert {"NO_GPS", "NO_CAPTURE_TIME"} <= codes(bare)
    app_time = dt.datetime(2020, 6, 15, 20, 30, tzinfo=CHINA)
    out = run(
        "exif/exifr_misc/noexif.jpg",
        policy,
        app_lat=23.18,
        app_lon=113.40,
        app_accuracy_m=8.0,
        app_time=app_time,
        expected_lat=23.18,
        expected_lon=113.40,
    )
    assert not ({"NO_GPS", "NO_CAPTURE_TIME", "CAPTURE_TIME_IMPLAUSIBLE"} & codes(out))
    assert out.metrics["gps_source"] == "app" and out.metrics["capture_time_source"] == "app"
    assert out.metrics["gps_distance_m"] == 0.0


# ---- capture time ------------------------------------------------------------------------


def meta_at(local: dt.datetime) -> Metadata:
    return Metadata(capture_time=CaptureTime(local=local))


def test_eight_hour_trap(policy: Policy) -> None:
    """20:00 local today, checked at 13:00 UTC (21:00 local): taken an hour ago."""
    out = run_meta(meta_at(dt.datetime(2020, 6, 15, 20, 0)), policy)
    assert "CAPTURE_TIME_IMPLAUSIBLE" not in codes(out)
    # 22:00 local is an hour ahead of the local clock: in the future
    ahead = run_meta(meta_at(dt.datetime(2020, 6, 15, 22, 0)), policy)
    ev = finding(ahead, "CAPTURE_TIME_IMPLAUSIBLE")
    assert ev["problem"] == "in_future" and ev["ahead_minutes"] == 60.0


def test_future_tolerance(policy: Policy) -> None:
    five_ahead = run_meta(meta_at(dt.datetime(2020, 6, 15, 21, 5)), policy)
    assert "CAPTURE_TIME_IMPLAUSIBLE" not in codes(five_ahead)


def test_aware_capture_time_compares_in_absolute_time(policy: Policy) -> None:
    # 08:30 in UTC-5 is 13:30 UTC: half an hour after "now"
    late = dt.datetime(2020, 6, 15, 8, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    assert (
        finding(run_meta(meta_at(late), policy), "CAPTURE_TIME_IMPLAUSIBLE")["problem"]
        == "in_future"
    )
    early = late - dt.timedelta(hours=1)
    assert "CAPTURE_TIME_IMPLAUSIBLE" not in codes(run_meta(meta_at(early), policy))


def test_before_earliest(policy: Policy) -> None:
    out = run("buildings/camera_corpus/fujifilm_ds7_2_japanese_house.jpg", policy)
    ev = finding(out, "CAPTURE_TIME_IMPLAUSIBLE")
    assert ev["problem"] == "before_earliest" and ev["capture_time"].startswith("1996-11-04")


def test_campaign_window(policy: Policy) -> None:
    window = dataclasses.replace(
        policy.metadata, campaign_start=dt.date(2020, 6, 1), campaign_end=dt.date(2020, 6, 10)
    )
    p = policy.replace(metadata=window)
    inside = run_meta(meta_at(dt.datetime(2020, 6, 10, 23, 59)), p)
    assert "CAPTURE_TIME_IMPLAUSIBLE" not in codes(inside)
    after = run_meta(meta_at(dt.datetime(2020, 6, 11, 0, 1)), p)
    assert finding(after, "CAPTURE_TIME_IMPLAUSIBLE")["problem"] == "after_campaign"
    before = run_meta(meta_at(dt.datetime(2020, 5, 31, 12, 0)), p)
    assert finding(before, "CAPTURE_TIME_IMPLAUSIBLE")["problem"] == "before_campaign"
    # 2020-06-10 17:00 UTC is 2020-06-11 01:00 in China: outside, by local date
    aware = run_meta(meta_at(dt.datetime(2020, 6, 10, 17, 0, tzinfo=dt.UTC)), p)
    assert finding(aware, "CAPTURE_TIME_IMPLAUSIBLE")["problem"] == "after_campaign"


def test_policy_timezone_is_used(policy: Policy) -> None:
    utc_policy = policy.replace(metadata=MetadataPolicy(timezone_offset_hours=0))
    # 20:00 naive read as UTC is 7 hours after 13:00 UTC
    out = run_meta(meta_at(dt.datetime(2020, 6, 15, 20, 0)), utc_policy)
    assert finding(out, "CAPTURE_TIME_IMPLAUSIBLE")["problem"] == "in_future"


def test_no_capture_time_reasons(policy: Policy) -> None:
    zeros = run("exif/timestamp_anomalies/olympus_c860l_date_zeros.jpg", policy)
    assert "all zeros" in finding(zeros, "NO_CAPTURE_TIME")["problem"]
    lund = run("buildings/opensfm_lund/01.jpg", policy)
    assert "NO_CAPTURE_TIME" in codes(lund) and "NO_GPS" not in codes(lund)


# ---- editors -----------------------------------------------------------------------------


def test_edited_evidence(policy: Policy) -> None:
    out = run("exif/edited_software/mapillary_adobe_coords_gimp.jpg", policy)
    ev = finding(out, "EDITED")
    assert ev["software"] == "GIMP 2.10.34"
    assert any(f.startswith("Software='GIMP") for f in ev["found"])
    assert out.metrics["software_kind"] == "editor: GIMP"


def test_transfer_tool_is_not_edited(policy: Policy) -> None:
    out = run("exif/edited_software/exifr_nikon_p6000_nikon_transfer_gps.jpg", policy)
    assert "EDITED" not in codes(out)
    assert out.metrics["software_kind"] == "vendor transfer tool"
