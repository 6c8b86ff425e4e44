"""All findings of a county in one call."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .batches import BatchThresholds, find_desk_batches, find_fast_movers
from .clusters import find_duplicate_clusters
from .columns import photo_columns
from .findings import AuditFinding
from .records import MatchRecord, PhotoRecord, VillageRecord
from .single import SingleThresholds, single_photo_findings

__all__ = ["AuditConfig", "compute_findings"]


@dataclass(frozen=True)
class AuditConfig:
    batches: BatchThresholds = field(default_factory=BatchThresholds)
    single: SingleThresholds = field(default_factory=SingleThresholds)


def compute_findings(
    photos: Sequence[PhotoRecord],
    villages: Iterable[VillageRecord] = (),
    matches: Iterable[MatchRecord] = (),
    config: AuditConfig = AuditConfig(),
) -> list[AuditFinding]:
    """Every finding, deduplicated by ID, in a stable order (severity, kind, ID).

    The records are read once into columns shared by every detector (see
    ``columns.py``: at county scale each pass over the records is the costly part).
    """
    cols = photo_columns(photos)
    matches = list(matches)
    by_id = dict(zip(cols.photo_ids, cols.photos, strict=True)) if matches else {}
    village_map = {v.village_id: v for v in villages}
    found: dict[str, AuditFinding] = {}
    for f in (
        *find_duplicate_clusters(by_id, matches),
        *find_desk_batches(cols.photos, config.batches, columns=cols),
        *find_fast_movers(cols.photos, config.batches, columns=cols),
        *single_photo_findings(cols.photos, village_map, config.single, columns=cols),
    ):
        found.setdefault(f.id, f)
    order = {"high": 0, "medium": 1, "low": 2}
    return sorted(found.values(), key=lambda f: (order[f.severity.value], f.kind.value, f.id))
