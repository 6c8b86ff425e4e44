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

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .columns import EPOCH, PhotoColumns, haversine_m_np, photo_columns
from .findings import AuditFinding, FindingKind, FindingSeverity, build_finding
from .geo import Grid, haversine_m
from .records import PhotoRecord
from .unionfind import connected_components

__all__ = ["BatchThresholds", "find_desk_batches", "find_fast_movers"]


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


def find_desk_batches(
    photos: Iterable[PhotoRecord],
    th: BatchThresholds = BatchThresholds(),
    *,
    columns: PhotoColumns | None = None,
) -> list[AuditFinding]:
    """Groups of at least ``th.min_households`` households shot from one spot within minutes.

    ``columns``: the photos already read (``photo_columns(photos)``), shared by the
    detectors of one audit.
    """
    cols = columns if columns is not None else photo_columns(photos)
    pts = np.flatnonzero(cols.located & cols.timed & np.isfinite(cols.lat) & np.isfinite(cols.lon))
    if not len(pts):
        return []
    i, j = _ball_pairs(cols.lat[pts], cols.lon[pts], cols.t[pts], th)
    i, j = _in_batches(i, j, lambda k: cols.household_codes(pts[k]), th.min_households)
    out = []
    for members in _components(len(pts), i, j):
        group = [
            _Point(cols.photos[k], float(cols.lat[k]), float(cols.lon[k]), float(cols.t[k]))
            for k in pts[members].tolist()
        ]
        out.append(_batch_finding(group))
    return out


def _ball_pairs(
    lat: np.ndarray, lon: np.ndarray, t: np.ndarray, th: BatchThresholds
) -> tuple[np.ndarray, np.ndarray]:
    """Every (i, j) with j in the ball of i: within ``spot_radius_m`` and taken in the
    ``window_minutes`` after it (i itself included).

    Points are sorted by (grid cell, time); for each of the 9 neighbouring cells the
    time window is a contiguous slice found by binary search, so the candidates are the
    near neighbours in space and time only, however dense a village is, and no Python
    runs per pair. The queries go in sorted order too, so each search starts near the
    previous one.
    """
    grid = Grid(th.spot_radius_m, float(np.max(np.abs(lat))))
    cy, cx = grid.cells(lat, lon)
    cy, cx = cy - cy.min() + 1, cx - cx.min() + 1  # neighbours stay >= 0
    width = int(cx.max()) + 2
    order = np.lexsort((t, cy * width + cx))
    lat, lon, t = lat[order], lon[order], t[order]
    cell = (cy * width + cx)[order]
    new_cell = np.r_[True, cell[1:] != cell[:-1]]
    occupied, rank = cell[new_cell], np.cumsum(new_cell) - 1
    window = th.window_minutes * 60.0
    t0, span = float(t.min()), float(t.max() - t.min()) + window
    # (cell rank, time) as one sorted float; the slack absorbs its rounding (a second at
    # least, far above an ulp) and the exact window is applied to the candidates.
    slack = 1.0 + (len(occupied) + 1) * (span + 4.0) * 1e-12
    stride = span + 4.0 * slack
    key = rank * stride + (t - t0)
    ii, jj = [], []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            ncell = cell + dy * width + dx
            pos = np.minimum(np.searchsorted(occupied, ncell), len(occupied) - 1)
            src = np.flatnonzero(occupied[pos] == ncell)
            base = pos[src] * stride + (t[src] - t0)
            lo = np.searchsorted(key, base - slack, side="left")
            hi = np.searchsorted(key, base + window + slack, side="right")
            a, b = _expand(src, lo, hi)
            ii.append(a)
            jj.append(b)
    i, j = np.concatenate(ii), np.concatenate(jj)
    in_time = (t[j] >= t[i]) & (t[j] <= t[i] + window)
    i, j = i[in_time], j[in_time]
    d = haversine_m_np(lat[i], lon[i], lat[j], lon[j])
    r = th.spot_radius_m
    near = d <= r
    # within rounding of the radius: decide with the scalar function, as the definition
    for k in np.flatnonzero(np.abs(d - r) <= 1e-9 * r + 1e-9).tolist():
        near[k] = haversine_m(lat[i[k]], lon[i[k]], lat[j[k]], lon[j[k]]) <= r
    return order[i[near]], order[j[near]]


def _expand(src: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (src[k], m) for every m in lo[k]:hi[k]."""
    counts = hi - lo
    total = int(counts.sum())
    a = np.repeat(src, counts)
    starts = np.repeat(lo - (np.cumsum(counts) - counts), counts)
    return a, starts + np.arange(total)


def _in_batches(
    i: np.ndarray,
    j: np.ndarray,
    households_of: Callable[[np.ndarray], np.ndarray],
    min_households: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The pairs whose ball (all pairs of one i) holds ``min_households`` households.

    Households are looked up only for balls with enough photos to hold that many.
    """
    size = np.bincount(i)
    big = size[i] >= min_households  # fewer photos than that: surely too few households
    i, j = i[big], j[big]
    if not len(i):
        return i, j
    n = int(max(i.max(), j.max())) + 1
    points = np.flatnonzero(np.bincount(j, minlength=n))
    code = np.zeros(n, dtype=np.int64)
    code[points] = households_of(points)
    household = code[j]
    stride = int(household.max()) + 1
    key = np.sort(i * stride + household)
    distinct = key[np.r_[True, key[1:] != key[:-1]]] // stride
    per_ball = np.bincount(distinct, minlength=n)
    keep = per_ball[i] >= min_households
    return i[keep], j[keep]


def _components(n: int, i: np.ndarray, j: np.ndarray) -> list[np.ndarray]:
    """The groups of two or more of the ``n`` points joined by the pairs, each in point
    order, by first point. No sort of the pairs: a dense spot gives millions."""
    label = connected_components(n, i, j)
    involved = np.zeros(n, dtype=bool)
    involved[i] = True
    involved[j] = True
    nodes = np.flatnonzero(involved)
    order = np.argsort(label[nodes], kind="stable")
    cuts = np.flatnonzero(np.diff(label[nodes][order])) + 1
    groups = [nodes[g] for g in np.split(order, cuts) if len(g) > 1]
    groups.sort(key=lambda g: int(g[0]))
    return groups


@dataclass(frozen=True)
class _Point:
    photo: PhotoRecord
    lat: float
    lon: float
    t: float  # seconds since EPOCH, local clock


def _span(points: Sequence[_Point]) -> tuple[str, str, float]:
    ts = sorted(p.t for p in points)
    first = EPOCH + dt.timedelta(seconds=ts[0])
    last = EPOCH + dt.timedelta(seconds=ts[-1])
    return first.isoformat(), last.isoformat(), (ts[-1] - ts[0]) / 60.0


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
    photos: Iterable[PhotoRecord],
    th: BatchThresholds = BatchThresholds(),
    *,
    columns: PhotoColumns | None = None,
) -> list[AuditFinding]:
    """Consecutive households of one verifier too far apart, or seconds apart in a burst.

    Findings come per verifier (in order of their first timed photo), jumps before
    bursts, each in time order.
    """
    cols = columns if columns is not None else photo_columns(photos)
    seq, vrank = _verifier_sequence(cols)
    found = [*_jumps(cols, seq, vrank, th), *_bursts(cols, seq, vrank, th)]
    found.sort(key=lambda kf: kf[0])
    return [f for _, f in found]


def _verifier_sequence(cols: PhotoColumns) -> tuple[np.ndarray, np.ndarray]:
    """Timed photos ordered by (verifier, capture time, photo ID), and the rank of each
    photo's verifier by its first timed photo."""
    timed = np.flatnonzero(cols.timed)
    v = cols.verifier[timed]
    n_codes = int(cols.verifier.max()) + 1 if len(v) else 0
    first = np.full(n_codes, len(v), dtype=np.int64)
    np.minimum.at(first, v, np.arange(len(v)))
    rank_of_code = np.empty(n_codes, dtype=np.int64)
    rank_of_code[np.argsort(first, kind="stable")] = np.arange(n_codes)
    vrank = rank_of_code[v]
    # by time, then (stable) by verifier: a radix sort when the ranks fit 16 bits
    by_time = np.argsort(cols.t[timed])
    small = np.int16 if n_codes <= np.iinfo(np.int16).max else np.int64
    order = by_time[np.argsort(vrank[by_time].astype(small), kind="stable")]
    seq, vr, t = timed[order], vrank[order], cols.t[timed][order]
    tie = np.flatnonzero((vr[1:] == vr[:-1]) & (t[1:] == t[:-1]))
    if len(tie):  # equal times: photo ID decides, as in a sort by (time, photo ID)
        starts = tie[np.r_[True, np.diff(tie) > 1]]
        ends = tie[np.r_[np.diff(tie) > 1, True]] + 2
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            seq[a:b] = sorted(seq[a:b].tolist(), key=lambda k: cols.photo_ids[k])
    return seq, vr


def _jumps(
    cols: PhotoColumns, seq: np.ndarray, vrank: np.ndarray, th: BatchThresholds
) -> list[tuple[tuple[int, int, int], AuditFinding]]:
    """Consecutive located photos of one verifier; numpy picks the candidates with a
    margin, the scalar definition decides."""
    at = np.flatnonzero(cols.located[seq])
    if len(at) < 2:
        return []
    loc, vr = seq[at], vrank[at]
    a, b = loc[:-1], loc[1:]
    pair = vr[1:] == vr[:-1]  # same household: decided in _jump
    dist = haversine_m_np(cols.lat[a], cols.lon[a], cols.lat[b], cols.lon[b])
    kmh = dist / np.maximum(cols.t[b] - cols.t[a], 1.0) * 3.6
    tol = 1e-9
    surely_ok = (dist < th.min_jump_m * (1 - tol) - tol) | (
        kmh <= th.max_speed_kmh * (1 - tol) - tol
    )
    out = []
    for k in np.flatnonzero(pair & ~surely_ok).tolist():
        i, j = int(a[k]), int(b[k])
        f = _jump(cols.t[i], cols.photos[i], cols.t[j], cols.photos[j], th)
        if f is not None:
            out.append(((int(vr[k]), 0, int(at[k])), f))
    return out


def _jump(
    ta: float, a: PhotoRecord, tb: float, b: PhotoRecord, th: BatchThresholds
) -> AuditFinding | None:
    if a.household_id == b.household_id:
        return None
    pa, pb = a.position, b.position
    assert pa is not None and pb is not None
    assert a.taken_at is not None and b.taken_at is not None
    dist = haversine_m(pa[0], pa[1], pb[0], pb[1])
    seconds = max(tb - ta, 1.0)
    kmh = dist / seconds * 3.6
    if dist < th.min_jump_m or kmh <= th.max_speed_kmh:
        return None
    evidence = {
        "verifier": a.verifier,
        "distance_m": round(dist, 1),
        "seconds": round(tb - ta, 1),
        "speed_kmh": round(kmh, 1),
        "from": {"photo_id": a.photo_id, "taken_at": a.taken_at.isoformat()},
        "to": {"photo_id": b.photo_id, "taken_at": b.taken_at.isoformat()},
    }
    return build_finding(
        FindingKind.FAST_MOVER,
        FindingSeverity.MEDIUM,
        (a, b),
        f"相邻两户相距 {dist / 1000:.1f} 公里，仅隔 {(tb - ta) / 60:.1f} 分钟"
        f"（{kmh:.0f} 公里/小时）",
        f"consecutive households {dist / 1000:.1f} km apart only "
        f"{(tb - ta) / 60:.1f} min apart ({kmh:.0f} km/h)",
        evidence,
    )


def _bursts(
    cols: PhotoColumns, seq: np.ndarray, vrank: np.ndarray, th: BatchThresholds
) -> list[tuple[tuple[int, int, int], AuditFinding]]:
    """Runs of one verifier's photos each within ``burst_gap_seconds`` of the previous;
    only runs long enough to hold ``burst_min_households`` households are looked at."""
    if not len(seq):
        return []
    t = cols.t[seq]
    joined = (vrank[1:] == vrank[:-1]) & (t[1:] - t[:-1] <= th.burst_gap_seconds)
    starts = np.flatnonzero(np.r_[True, ~joined])
    ends = np.r_[starts[1:], len(seq)]
    out = []
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        if e - s < th.burst_min_households:
            continue
        run = [(float(cols.t[k]), cols.photos[k]) for k in seq[s:e].tolist()]
        f = _burst(run, th)
        if f is not None:
            out.append(((int(vrank[s]), 1, s), f))
    return out


def _burst(run: list[tuple[float, PhotoRecord]], th: BatchThresholds) -> AuditFinding | None:
    households = len({p.household_id for _, p in run})
    if households < th.burst_min_households:
        return None
    seconds = run[-1][0] - run[0][0]
    evidence = {
        "verifier": run[0][1].verifier,
        "households": households,
        "seconds": round(seconds, 1),
        "max_gap_seconds": th.burst_gap_seconds,
    }
    return build_finding(
        FindingKind.FAST_MOVER,
        FindingSeverity.HIGH,
        (p for _, p in run),
        f"{households} 户照片在 {seconds:.0f} 秒内连续拍摄",
        f"{households} households photographed within {seconds:.0f} s",
        evidence,
    )
