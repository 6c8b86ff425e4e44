"""Desk-made batches and implausible movement, found without all-pairs work.

A verifier who photographs printed pictures, or one house again and again, at the
village office leaves many households' photos taken from one spot within minutes. An
honest verifier walks from house to house: a few households per spot, a few minutes
each, at walking speed. Two detectors:

* ``find_desk_batches``: a spatial grid of cells as wide as the spot radius, each cell's
  photos sorted by capture time. For every photo only the 3x3 neighbouring cells and the
  time window after it are searched, so the cost grows with the number of photos times
  the (small) number of near neighbours in space and time, not with all pairs.
* ``find_fast_movers``: each verifier's photos sorted by capture time; consecutive
  households too far apart for the time between them, or a burst of households seconds
  apart.

A batch is defined by a ball, not by chaining: at least ``min_households`` households
within ``spot_radius_m`` of one photo and taken in the ``window_minutes`` after it.
Chaining (single linkage) would join a whole street of a dense village walked at a
normal pace; a ball does not.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .findings import AuditFinding, FindingKind, FindingSeverity, build_finding
from .geo import Grid, haversine_m
from .records import PhotoRecord
from .unionfind import UnionFind

__all__ = ["BatchThresholds", "find_desk_batches", "find_fast_movers"]

_EPOCH = dt.datetime(2000, 1, 1)


@dataclass(frozen=True)
class BatchThresholds:
    """Where honest field work ends and desk work begins.

    spot_radius_m: GPS of phones is good to 5-15 m outdoors; 30 m covers that twice
        while staying below the spacing of most rural houses' fronts.
    window_minutes / min_households: honest work takes a few minutes per household
        (walk, frame, upload), so five households in ten minutes from one spot is
        already double the pace of a dense row of houses.
    max_speed_kmh / min_jump_m: faster than a car on county roads between two
        consecutive households; jumps shorter than min_jump_m are GPS noise.
    burst_gap_seconds / burst_min_households: several households each within
        seconds of the previous one cannot have been walked to.
    """

    spot_radius_m: float = 30.0
    window_minutes: float = 10.0
    min_households: int = 5
    max_speed_kmh: float = 120.0
    min_jump_m: float = 200.0
    burst_gap_seconds: float = 15.0
    burst_min_households: int = 4


@dataclass(frozen=True)
class _Point:
    photo: PhotoRecord
    lat: float
    lon: float
    t: float  # seconds since _EPOCH, local clock


def _points(photos: Iterable[PhotoRecord]) -> list[_Point]:
    out = []
    for p in photos:
        pos, when = p.position, p.taken_at
        if pos is not None and when is not None:
            out.append(_Point(p, pos[0], pos[1], (when - _EPOCH).total_seconds()))
    return out


def _span(points: Sequence[_Point]) -> tuple[str, str, float]:
    ts = sorted(p.t for p in points)
    first = _EPOCH + dt.timedelta(seconds=ts[0])
    last = _EPOCH + dt.timedelta(seconds=ts[-1])
    return first.isoformat(), last.isoformat(), (ts[-1] - ts[0]) / 60.0


def find_desk_batches(
    photos: Iterable[PhotoRecord], th: BatchThresholds = BatchThresholds()
) -> list[AuditFinding]:
    """Groups of at least ``th.min_households`` households shot from one spot within minutes."""
    pts = _points(photos)
    if not pts:
        return []
    grid = Grid(th.spot_radius_m, max(abs(p.lat) for p in pts))
    cells: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i in sorted(range(len(pts)), key=lambda i: pts[i].t):
        cells[grid.cell(pts[i].lat, pts[i].lon)].append(i)
    times = {c: [pts[i].t for i in idx] for c, idx in cells.items()}
    window = th.window_minutes * 60.0
    uf = UnionFind()
    for i, a in enumerate(pts):
        ball = []
        for c in grid.neighbours(grid.cell(a.lat, a.lon)):
            if c not in cells:
                continue
            ts, idx = times[c], cells[c]
            lo, hi = bisect.bisect_left(ts, a.t), bisect.bisect_right(ts, a.t + window)
            for j in idx[lo:hi]:
                b = pts[j]
                if haversine_m(a.lat, a.lon, b.lat, b.lon) <= th.spot_radius_m:
                    ball.append(j)
        if len({pts[j].photo.household_id for j in ball}) >= th.min_households:
            for j in ball:
                uf.union(i, j)
    return [_batch_finding([pts[i] for i in group]) for group in uf.groups() if len(group) > 1]


def _batch_finding(group: list[_Point]) -> AuditFinding:
    clat = sum(p.lat for p in group) / len(group)
    clon = sum(p.lon for p in group) / len(group)
    radius = max(haversine_m(clat, clon, p.lat, p.lon) for p in group)
    first, last, minutes = _span(group)
    households = {p.photo.household_id for p in group}
    verifiers = sorted({p.photo.verifier for p in group})
    evidence = {
        "households": len(households),
        "photos": len(group),
        "centre": [round(clat, 6), round(clon, 6)],
        "radius_m": round(radius, 1),
        "first": first,
        "last": last,
        "minutes": round(minutes, 1),
        "verifiers": verifiers,
    }
    return build_finding(
        FindingKind.DESK_BATCH,
        FindingSeverity.HIGH,
        (p.photo for p in group),
        f"{len(households)} 户照片在 {radius:.0f} 米范围内、{minutes:.0f} 分钟内拍摄",
        f"{len(households)} households photographed within {radius:.0f} m in {minutes:.0f} min",
        evidence,
    )


def find_fast_movers(
    photos: Iterable[PhotoRecord], th: BatchThresholds = BatchThresholds()
) -> list[AuditFinding]:
    """Consecutive households of one verifier too far apart, or seconds apart in a burst."""
    by_verifier: dict[str, list[tuple[float, PhotoRecord]]] = defaultdict(list)
    for p in photos:
        when = p.taken_at
        if when is not None:
            by_verifier[p.verifier].append(((when - _EPOCH).total_seconds(), p))
    out: list[AuditFinding] = []
    for seq in by_verifier.values():
        seq.sort(key=lambda tp: (tp[0], tp[1].photo_id))
        out.extend(_jumps(seq, th))
        out.extend(_bursts(seq, th))
    return out


def _jumps(seq: list[tuple[float, PhotoRecord]], th: BatchThresholds) -> list[AuditFinding]:
    out = []
    located = [(t, p, p.position) for t, p in seq if p.position is not None]
    for (ta, a, pa), (tb, b, pb) in itertools.pairwise(located):
        if a.household_id == b.household_id:
            continue
        dist = haversine_m(pa[0], pa[1], pb[0], pb[1])
        seconds = max(tb - ta, 1.0)
        kmh = dist / seconds * 3.6
        if dist < th.min_jump_m or kmh <= th.max_speed_kmh:
            continue
        evidence = {
            "verifier": a.verifier,
            "distance_m": round(dist, 1),
            "seconds": round(tb - ta, 1),
            "speed_kmh": round(kmh, 1),
            "from": {"photo_id": a.photo_id, "taken_at": a.taken_at.isoformat()},
            "to": {"photo_id": b.photo_id, "taken_at": b.taken_at.isoformat()},
        }
        out.append(
            build_finding(
                FindingKind.FAST_MOVER,
                FindingSeverity.MEDIUM,
                (a, b),
                f"相邻两户相距 {dist / 1000:.1f} 公里，仅隔 {(tb - ta) / 60:.1f} 分钟"
                f"（{kmh:.0f} 公里/小时）",
                f"consecutive households {dist / 1000:.1f} km apart only "
                f"{(tb - ta) / 60:.1f} min apart ({kmh:.0f} km/h)",
                evidence,
            )
        )
    return out


def _bursts(seq: list[tuple[float, PhotoRecord]], th: BatchThresholds) -> list[AuditFinding]:
    out = []
    start = 0
    for end in range(1, len(seq) + 1):
        if end < len(seq) and seq[end][0] - seq[end - 1][0] <= th.burst_gap_seconds:
            continue
        run, start = seq[start:end], end
        households = len({p.household_id for _, p in run})
        if households < th.burst_min_households:
            continue
        seconds = run[-1][0] - run[0][0]
        evidence = {
            "verifier": run[0][1].verifier,
            "households": households,
            "seconds": round(seconds, 1),
            "max_gap_seconds": th.burst_gap_seconds,
        }
        out.append(
            build_finding(
                FindingKind.FAST_MOVER,
                FindingSeverity.HIGH,
                (p for _, p in run),
                f"{households} 户照片在 {seconds:.0f} 秒内连续拍摄",
                f"{households} households photographed within {seconds:.0f} s",
                evidence,
            )
        )
    return out
