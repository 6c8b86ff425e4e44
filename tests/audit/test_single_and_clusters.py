"""Per-photo findings and duplicate clusters."""

from __future__ import annotations

import datetime as dt

from photocheck.audit import (
    AppCapture,
    MatchRecord,
    PhotoRecord,
    SingleThresholds,
    ThumbnailCheck,
    VillageRecord,
    find_duplicate_clusters,
    single_photo_findings,
)

T = dt.datetime(2020, 8, 3, 10, 0)
VILLAGES = {"V1": VillageRecord("V1", "王家沟村", "城关镇", 33.70, 110.30)}
WINDOW = SingleThresholds(dt.date(2020, 8, 1), dt.date(2020, 8, 10), gps_radius_m=2000)


def rec(pid: str, hh: str, **kw) -> PhotoRecord:
    base = dict(
        village_id="V1", town="城关镇", verifier="v1", lat=33.701, lon=110.301, captured_at=T
    )
    return PhotoRecord(photo_id=pid, household_id=hh, **{**base, **kw})


def kinds(photo: PhotoRecord) -> list[str]:
    return [f.kind.value for f in single_photo_findings([photo], VILLAGES, WINDOW)]


def test_clean_photo_has_no_findings() -> None:
    assert kinds(rec("p1", "h1")) == []


def test_each_single_kind() -> None:
    assert kinds(rec("p", "h", verdict="review", reasons=("NO_GPS",))) == ["photo_reason"]
    assert kinds(rec("p", "h", verdict="review", reasons=("NO_GPS",), is_current=False)) == []
    assert kinds(rec("p", "h", captured_at=dt.datetime(2019, 8, 3, 10))) == ["outside_campaign"]
    assert kinds(rec("p", "h", captured_at=dt.datetime(2020, 8, 10, 23, 59))) == []
    assert kinds(rec("p", "h", thumbnail=ThumbnailCheck(0.1, 80, False))) == ["thumbnail_mismatch"]
    assert kinds(rec("p", "h", thumbnail=ThumbnailCheck(0.97, 3, True))) == []
    no_meta = rec("p", "h", has_camera_metadata=False, app=AppCapture(in_app=True))
    assert kinds(no_meta) == ["metadata_missing"]
    gallery = rec("p", "h", has_camera_metadata=False, app=AppCapture(in_app=False))
    assert kinds(gallery) == []
    far = kinds(rec("p", "h", lat=33.75, lon=110.30))  # 5.6 km north
    assert far == ["gps_far"]


def test_gps_far_uses_app_fix_when_camera_has_none() -> None:
    p = rec("p", "h", lat=None, lon=None, app=AppCapture(lat=33.8, lon=110.3))
    (f,) = single_photo_findings([p], VILLAGES, WINDOW)
    assert f.kind == "gps_far" and f.evidence["distance_m"] > 11_000


def test_duplicate_clusters_join_pairs_across_households() -> None:
    photos = {
        p.photo_id: p
        for p in [
            rec("a", "h1"),
            rec("b", "h2"),
            rec("c", "h3"),
            rec("d", "h4"),
            rec("e", "h4"),
            rec("f", "h5"),
        ]
    }
    matches = [
        MatchRecord("a", "b", "same_photo", 4.0),
        MatchRecord("c", "b", "same_scene", 60.0),
        MatchRecord("d", "e", "same_photo", 0.0),  # a retake within one household
        MatchRecord("f", "zzz", "same_photo", 1.0),  # unknown photo: ignored
        MatchRecord("f", "a", "shared_site", 0.0),  # allowed shared site photo
    ]
    (f,) = find_duplicate_clusters(photos, matches)
    assert f.photo_ids == ("a", "b", "c") and f.household_ids == ("h1", "h2", "h3")
    assert f.severity == "high" and f.evidence["relation"] == "same_photo"
    assert [(p["a"], p["b"], p["distance"]) for p in f.evidence["pairs"]] == [
        ("a", "b", 4.0),
        ("c", "b", 60.0),
    ]
