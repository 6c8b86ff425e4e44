"""All findings of a county in one call."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .batches import BatchThresholds, find_desk_batches, find_fast_movers
from .clusters import find_duplicate_clusters
from .columns import photo_columns
from .findings import AuditFinding
from .records import MatchRecord, PhotoRecord, VillageRecord
from .single import SingleThresholds, single_photo_findings

if TYPE_CHECKING:
    from ..policy import Policy

__all__ = ["AuditConfig", "compute_findings"]


@dataclass(frozen=True)
class AuditConfig:
    batches: BatchThresholds = field(default_factory=BatchThresholds)
    single: SingleThresholds = field(default_factory=SingleThresholds)

    @classmethod
    def from_policy(cls, policy: Policy, *, gps_radius_m: float | None = None) -> AuditConfig:
        """The one way to build it: the policy's campaign window and GPS radius, the
        radius overridden by the service setting (PHOTOCHECK_GPS_RADIUS_M) when given."""
        m = policy.metadata
        radius = gps_radius_m or policy.area.gps_radius_m
        return cls(single=SingleThresholds(m.campaign_start, m.campaign_end, radius))


def compute_findings(
    photos: Sequence[PhotoRecord],
    villages: Iterable[VillageRecord] = (),
    matches: Iterable[MatchRecord] = (),
    config: AuditConfig = AuditConfig(),
    *,
    timings: dict[str, float] | None = None,
) -> list[AuditFinding]:
    """Every finding, deduplicated by ID, in a stable order (severity, kind, ID).

    The records are read once into columns shared by every detector (see
    ``columns.py``: at county scale each pass over the records is the costly part).
    ``timings``, if given, receives the seconds spent in each stage (for benchmarks).
    """
    clock = _Clock(timings)
    with clock("columns"):
        cols = photo_columns(photos)
    with clock("clusters"):
        matches = list(matches)
        linked = {pid for m in matches for pid in (m.photo_id, m.other_photo_id)}
        pairs = zip(cols.photo_ids, cols.photos, strict=True) if linked else ()
        by_id = {pid: p for pid, p in pairs if pid in linked}
        clusters = find_duplicate_clusters(by_id, matches)
    with clock("batches"):
        batches = find_desk_batches(cols.photos, config.batches, columns=cols)
    with clock("movers"):
        movers = find_fast_movers(cols.photos, config.batches, columns=cols)
    with clock("single"):
        village_map = {v.village_id: v for v in villages}
        single = single_photo_findings(cols.photos, village_map, config.single, columns=cols)
    with clock("merge"):
        found: dict[str, AuditFinding] = {}
        for f in (*clusters, *batches, *movers, *single):
            found.setdefault(f.id, f)
        order = {"high": 0, "medium": 1, "low": 2}
        out = sorted(found.values(), key=lambda f: (order[f.severity.value], f.kind.value, f.id))
    return out


class _Clock:
    """``with clock(name):`` adds the block's seconds to ``timings[name]``, if wanted."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if self.timings is None:
            yield
            return
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start
