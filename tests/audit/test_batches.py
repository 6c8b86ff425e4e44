"""Desk-made batches and fast movers: planted cases found, honest walking not flagged,
and the grid search equal to a brute-force oracle."""

from __future__ import annotations

import datetime as dt
import math
import random

import pytest

from photocheck.audit import (
    AuditConfig,
    BatchThresholds,
    PhotoRecord,
    SingleThresholds,
    compute_findings,
    find_desk_batches,
    find_fast_movers,
)
from photocheck.audit.geo import haversine_m
from photocheck.audit.synthetic import synthetic_county
from photocheck.audit.unionfind import UnionFind

T0 = dt.datetime(2020, 8, 3, 9, 0)
M_PER_DEG = 111_195.0


def photo(
    i: int, lat: float, lon: float, t: dt.datetime, *, hh: str | None = None, verifier: str = "v1"
) -> PhotoRecord:
    return PhotoRecord(
        photo_id=f"p{i:05d}",
        household_id=hh or f"h{i:05d}",
        village_id="V1",
        town="T",
        verifier=verifier,
        lat=lat,
        lon=lon,
        captured_at=t,
    )


def offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    return lat + north_m / M_PER_DEG, lon + east_m / (M_PER_DEG * math.cos(math.radians(lat)))


def brute_force_batches(photos: list[PhotoRecord], th: BatchThresholds) -> set[frozenset[str]]:
    """The definition, literally: every pair compared."""
    uf = UnionFind()
    window = dt.timedelta(minutes=th.window_minutes)

    def near(a: PhotoRecord, b: PhotoRecord) -> bool:
        assert a.lat is not None and a.lon is not None and a.captured_at is not None
        assert b.lat is not None and b.lon is not None and b.captured_at is not None
        return (
            haversine_m(a.lat, a.lon, b.lat, b.lon) <= th.spot_radius_m
            and a.captured_at <= b.captured_at <= a.captured_at + window
        )

    for a in photos:
        ball = [b for b in photos if near(a, b)]
        if len({b.household_id for b in ball}) >= th.min_households:
            for b in ball:
                uf.union(a.photo_id, b.photo_id)
    return {frozenset(g) for g in uf.groups() if len(g) > 1}


@pytest.mark.parametrize("seed", range(12))
def test_grid_equals_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    lat0 = rng.choice([23.1, 33.7, 47.0])  # higher latitudes shrink longitude degrees
    box = rng.choice([60.0, 150.0, 400.0])
    photos = []
    for i in range(rng.randint(30, 120)):
        lat, lon = offset(lat0, 110.0, rng.uniform(0, box), rng.uniform(0, box))
        t = T0 + dt.timedelta(seconds=rng.uniform(0, 3600))
        photos.append(photo(i, lat, lon, t, hh=f"h{rng.randint(0, 60)}"))
    th = BatchThresholds(
        spot_radius_m=rng.choice([15.0, 30.0, 50.0]),
        window_minutes=rng.choice([5.0, 10.0, 20.0]),
        min_households=rng.choice([3, 4, 5]),
    )
    found = {frozenset(f.photo_ids) for f in find_desk_batches(photos, th)}
    assert found == brute_force_batches(photos, th)


def test_desk_batch_from_one_spot_is_found() -> None:
    photos = [
        photo(i, *offset(33.7, 110.3, (i % 3) * 4.0, (i % 2) * 5.0), T0 + dt.timedelta(minutes=i))
        for i in range(7)
    ]
    (f,) = find_desk_batches(photos)
    assert f.kind == "desk_batch" and f.severity == "high"
    assert len(f.household_ids) == 7
    assert f.evidence["radius_m"] < 10 and f.evidence["minutes"] == 6.0


def test_honest_walk_along_a_dense_street_is_not_flagged() -> None:
    """Houses 12 m apart on both sides of a street, 3 minutes each at walking pace."""
    photos, t = [], T0
    for i in range(60):
        side = 15.0 if i % 2 else -15.0
        photos.append(photo(i, *offset(33.7, 110.3, side, 12.0 * (i // 2)), t))
        t += dt.timedelta(minutes=3, seconds=20)
    config = AuditConfig(single=SingleThresholds())
    assert [f for f in compute_findings(photos, config=config) if f.kind != "photo_reason"] == []


def test_retakes_of_one_household_are_not_a_batch() -> None:
    photos = [photo(i, 33.7, 110.3, T0 + dt.timedelta(minutes=i), hh="h1") for i in range(8)]
    assert find_desk_batches(photos) == []


def test_fast_mover_and_its_negatives() -> None:
    a = photo(1, 33.7, 110.3, T0)
    far = photo(2, *offset(33.7, 110.3, 5000, 0), T0 + dt.timedelta(minutes=2))  # 150 km/h
    by_car = photo(3, *offset(33.7, 110.3, 5000, 0), T0 + dt.timedelta(minutes=30))
    jitter = photo(4, *offset(33.7, 110.3, 60, 0), T0 + dt.timedelta(seconds=30))
    (f,) = find_fast_movers([a, far])
    assert f.kind == "fast_mover" and f.evidence["speed_kmh"] == pytest.approx(150, rel=0.02)
    assert find_fast_movers([a, by_car]) == []
    assert find_fast_movers([a, jitter]) == []  # under min_jump_m: GPS noise
    other = photo(2, *offset(33.7, 110.3, 5000, 0), T0 + dt.timedelta(minutes=2), verifier="v2")
    assert find_fast_movers([a, other]) == []  # two verifiers, two places: fine


def test_burst_of_households_seconds_apart() -> None:
    photos = [
        photo(i, *offset(33.7, 110.3, 40.0 * i, 0), T0 + dt.timedelta(seconds=6 * i))
        for i in range(5)
    ]
    found = find_fast_movers(photos)
    assert any(len(f.photo_ids) == 5 and f.severity == "high" for f in found)


def test_ids_are_stable_across_recomputation() -> None:
    county = synthetic_county(1500, seed=3)
    first = {f.id for f in compute_findings(county.photos, county.villages, county.matches)}
    shuffled = list(county.photos)
    random.Random(9).shuffle(shuffled)
    again = {f.id for f in compute_findings(shuffled, county.villages, county.matches)}
    assert first == again and first


@pytest.mark.parametrize("seed", [0, 1])
def test_synthetic_county_planted_found_honest_quiet(seed: int) -> None:
    county = synthetic_county(6000, seed=seed)
    findings = compute_findings(county.photos, county.villages, county.matches)
    batches = [set(f.photo_ids) for f in findings if f.kind == "desk_batch"]
    movers = [set(f.photo_ids) for f in findings if f.kind == "fast_mover"]
    assert county.planted_batches and county.planted_jumps and county.planted_bursts
    for planted in county.planted_batches:
        assert any(planted <= b for b in batches)
    for pid in county.planted_jumps:
        assert any(pid in m for m in movers)
    for planted in county.planted_bursts:
        assert any(planted <= m for m in movers)
    planted_ids = set().union(*county.planted_batches, *county.planted_bursts)
    planted_ids |= set(county.planted_jumps)
    for group in batches + movers:  # nothing honest was flagged
        assert group & planted_ids
    for group in batches:
        assert any(group <= p | set(county.planted_jumps) for p in county.planted_batches)
