"""A synthetic county for tests and benchmarks, with planted desk batches and fast movers.

Realistic shape, not real data: towns spread over ~50 km, villages a few km around
their town, about 165 households per village (Danfeng: 24,218 in 148) within ~1 km of
the village centre. Each village's verifier walks a snake route through the village at
~4 km/h, spends 2-6 minutes per household, works 08:00-18:00 and stops after ``days``
days (the rest have no photo yet). Capture times are naive China time.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass, field
from typing import Any

from .geo import haversine_m
from .records import (
    CHINA_TZ,
    AppCapture,
    HouseholdRecord,
    MatchRecord,
    PhotoRecord,
    ThumbnailCheck,
    VillageRecord,
)

__all__ = ["SyntheticCounty", "synthetic_county"]

_TOWNS = [
    "城关",
    "龙驹",
    "棣花",
    "商",
    "竹林关",
    "土门",
    "寺坪",
    "赵川",
    "峦庄",
    "铁峪铺",
    "武关",
    "花瓶",
    "桃坪",
    "资峪",
    "庾岭",
    "蔡川",
]
_SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕"
_PLACES = "沟坪河湾岭庄坡塬川峪"
_GIVEN = "建国秀英桂兰志强春梅明德玉珍海燕永福"
_M_PER_DEG = 111_195.0


@dataclass
class SyntheticCounty:
    villages: list[VillageRecord]
    households: list[HouseholdRecord]
    photos: list[PhotoRecord]
    matches: list[MatchRecord]
    planted_batches: list[frozenset[str]] = field(default_factory=list)  # photo IDs
    planted_jumps: list[str] = field(default_factory=list)  # photo taken far away
    planted_bursts: list[frozenset[str]] = field(default_factory=list)
    campaign_start: dt.date = dt.date(2020, 8, 1)
    campaign_end: dt.date = dt.date(2020, 8, 10)


def _offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    return (
        lat + north_m / _M_PER_DEG,
        lon + east_m / (_M_PER_DEG * math.cos(math.radians(lat))),
    )


def _village_names(n: int) -> list[str]:
    names = [f"{s}家{p}村" for p in _PLACES for s in _SURNAMES]
    return [names[i] if i < len(names) else f"第{i + 1}村" for i in range(n)]


def synthetic_county(
    n_households: int,
    *,
    seed: int = 0,
    days: int = 6,
    start: dt.date = dt.date(2020, 8, 3),
    n_batches: int | None = None,
    n_jumps: int | None = None,
    n_bursts: int | None = None,
) -> SyntheticCounty:
    """About ``n_households`` households; planted anomalies default to one per ~2,000."""
    rng = random.Random(seed)
    n_villages = max(1, round(n_households / 165))
    n_towns = max(1, round(n_villages / 12))
    centre = (33.70, 110.35)
    towns = [
        (
            _TOWNS[i] + "镇" if i < len(_TOWNS) else f"第{i + 1}镇",
            _offset(*centre, rng.uniform(-25e3, 25e3), rng.uniform(-25e3, 25e3)),
        )
        for i in range(n_towns)
    ]
    names = _village_names(n_villages)
    villages = []
    for v in range(n_villages):
        town, tc = towns[v % n_towns]
        vc = _offset(*tc, rng.uniform(-6e3, 6e3), rng.uniform(-6e3, 6e3))
        villages.append(VillageRecord(f"V{v + 1:04d}", names[v], town, vc[0], vc[1]))
    sizes = [
        n_households // n_villages + (1 if v < n_households % n_villages else 0)
        for v in range(n_villages)
    ]
    county = SyntheticCounty(villages, [], [], [])
    for village, size in zip(villages, sizes, strict=True):
        _walk_village(county, village, size, rng, start, days)
    _plant(county, rng, n_batches, n_jumps, n_bursts)
    _extras(county, rng)
    return county


def _walk_village(
    county: SyntheticCounty,
    village: VillageRecord,
    size: int,
    rng: random.Random,
    start: dt.date,
    days: int,
) -> None:
    assert village.centre_lat is not None and village.centre_lon is not None
    homes = []
    for _ in range(size):
        r = min(abs(rng.gauss(0, 400)), 1000.0)
        a = rng.uniform(0, 2 * math.pi)
        homes.append(
            _offset(village.centre_lat, village.centre_lon, r * math.sin(a), r * math.cos(a))
        )
    strip = 150.0 / _M_PER_DEG  # snake through 150 m strips, as a walker would

    def route_key(p: tuple[float, float]) -> tuple[int, float]:
        row = math.floor(p[0] / strip)
        return (row, p[1] if row % 2 == 0 else -p[1])

    homes.sort(key=route_key)
    verifier = f"{village.village_id}-verifier"
    t = dt.datetime.combine(start, dt.time(8, 0)) + dt.timedelta(minutes=rng.uniform(0, 40))
    last_day = start + dt.timedelta(days=days - 1)
    prev = homes[0] if homes else (0.0, 0.0)
    for i, home in enumerate(homes):
        hid = f"{village.village_id}{i + 1:04d}"
        t += dt.timedelta(seconds=haversine_m(*prev, *home) / 1.1)
        if t.time() > dt.time(18, 0):
            t = dt.datetime.combine(t.date() + dt.timedelta(days=1), dt.time(8, 0))
            t += dt.timedelta(minutes=rng.uniform(0, 30))
        prev = home
        if t.date() > last_day:
            county.households.append(HouseholdRecord(hid, village.village_id))
            continue
        work = dt.timedelta(minutes=rng.uniform(2, 6))
        taken = t + work / 2
        t += work
        verdict, reasons = _verdict(rng)
        lat, lon = _offset(*home, rng.gauss(0, 5), rng.gauss(0, 5))
        uploaded = (taken + dt.timedelta(minutes=rng.uniform(0.2, 20))).replace(tzinfo=CHINA_TZ)
        pid = f"P{len(county.photos) + 1:07d}"
        county.photos.append(
            PhotoRecord(
                photo_id=pid,
                household_id=hid,
                village_id=village.village_id,
                town=village.town,
                verifier=verifier,
                lat=lat,
                lon=lon,
                captured_at=taken,
                uploaded_at=uploaded.astimezone(dt.UTC),
                verdict=verdict,
                reasons=reasons,
                app=AppCapture(
                    in_app=True, lat=lat, lon=lon, captured_at=taken, device_id=verifier
                ),
                head_name=rng.choice(_SURNAMES) + "".join(rng.sample(_GIVEN, 2)),
                village_name=village.name,
            )
        )
        county.households.append(
            HouseholdRecord(hid, village.village_id, ((uploaded.astimezone(dt.UTC), verdict),))
        )


def _verdict(rng: random.Random) -> tuple[str, tuple[str, ...]]:
    x = rng.random()
    if x < 0.03:
        return "reject", (rng.choice(["BLURRY", "TOO_DARK", "NO_HOUSE"]),)
    if x < 0.10:
        return "review", (rng.choice(["NO_GPS", "TILTED", "EDITED"]),)
    return "accept", ()


def _when(p: PhotoRecord) -> dt.datetime:
    """A synthetic photo always has a capture time."""
    assert p.captured_at is not None
    return p.captured_at


def _where(p: PhotoRecord) -> tuple[float, float]:
    """A synthetic photo always has a position."""
    assert p.lat is not None and p.lon is not None
    return p.lat, p.lon


def _replace(county: SyntheticCounty, i: int, **changes: Any) -> None:
    from dataclasses import replace

    county.photos[i] = replace(county.photos[i], **changes)


def _plant(
    county: SyntheticCounty,
    rng: random.Random,
    n_batches: int | None,
    n_jumps: int | None,
    n_bursts: int | None,
) -> None:
    n = len(county.photos)
    default = max(1, n // 2000)
    by_village: dict[str, list[int]] = {}
    for i, p in enumerate(county.photos):
        by_village.setdefault(p.village_id, []).append(i)
    used: set[int] = set()
    vids = [v for v, idx in by_village.items() if len(idx) >= 40]
    rng.shuffle(vids)
    vmap = {v.village_id: v for v in county.villages}
    for vid in vids[: n_batches if n_batches is not None else default]:
        # 6-10 households "photographed" at the village office one evening
        idx = rng.sample(by_village[vid][5:-5], rng.randint(6, 10))
        v = vmap[vid]
        t0 = dt.datetime.combine(_when(county.photos[idx[0]]).date(), dt.time(19, 5))
        for k, i in enumerate(idx):
            assert v.centre_lat is not None and v.centre_lon is not None
            lat, lon = _offset(v.centre_lat, v.centre_lon, rng.gauss(0, 4), rng.gauss(0, 4))
            taken = t0 + dt.timedelta(seconds=k * rng.uniform(40, 70))
            _replace(
                county,
                i,
                lat=lat,
                lon=lon,
                captured_at=taken,
                app=AppCapture(True, lat, lon, taken, county.photos[i].verifier),
            )
        used.update(idx)
        county.planted_batches.append(frozenset(county.photos[i].photo_id for i in idx))
    rest = [v for v in vids if not used.intersection(by_village[v])]
    for vid in rest[: n_jumps if n_jumps is not None else default]:
        # one photo whose GPS is 25 km away although the next house is minutes later
        seq = sorted(by_village[vid], key=lambda i: _when(county.photos[i]))
        for a, b, c in zip(seq, seq[1:], seq[2:], strict=False):
            pa, pb, pc = county.photos[a], county.photos[b], county.photos[c]
            if (_when(pc) - _when(pa)) < dt.timedelta(minutes=14):
                lat, lon = _offset(*_where(pb), 25e3, 0)
                _replace(
                    county,
                    b,
                    lat=lat,
                    lon=lon,
                    app=AppCapture(True, lat, lon, pb.captured_at, pb.verifier),
                )
                used.add(b)
                county.planted_jumps.append(pb.photo_id)
                break
    for vid in rest[len(county.planted_jumps) :][: n_bursts if n_bursts is not None else default]:
        # five households seconds apart, late at night
        idx = sorted(by_village[vid], key=lambda i: _when(county.photos[i]))[10:15]
        t0 = dt.datetime.combine(_when(county.photos[idx[0]]).date(), dt.time(21, 30))
        for k, i in enumerate(idx):
            taken = t0 + dt.timedelta(seconds=8 * k)
            p = county.photos[i]
            _replace(
                county, i, captured_at=taken, app=AppCapture(True, p.lat, p.lon, taken, p.verifier)
            )
        used.update(idx)
        county.planted_bursts.append(frozenset(county.photos[i].photo_id for i in idx))


def _extras(county: SyntheticCounty, rng: random.Random) -> None:
    """Duplicate pairs and the rarer single-photo anomalies, about 1 in 1,000 each."""
    n = len(county.photos)
    if n < 4:
        return
    for _ in range(max(1, n // 1000)):
        a, b = rng.sample(range(n), 2)
        pa, pb = county.photos[a], county.photos[b]
        rel = rng.choice(["same_photo", "same_scene"])
        dist = rng.randint(0, 20) if rel == "same_photo" else rng.randint(40, 90)
        county.matches.append(MatchRecord(pa.photo_id, pb.photo_id, rel, float(dist), {}))
    for i in rng.sample(range(n), max(1, n // 1000)):
        _replace(county, i, thumbnail=ThumbnailCheck(0.12, 70.0, False))
    for i in rng.sample(range(n), max(1, n // 1000)):
        _replace(county, i, has_camera_metadata=False, lat=None, lon=None, captured_at=None)
    for i in rng.sample(range(n), max(1, n // 2000)):
        old = county.photos[i].captured_at
        _replace(county, i, captured_at=old.replace(year=2019) if old else None)
