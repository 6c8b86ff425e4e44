"""Duplicate clusters: photos of different households linked by the similarity index.

The index stores pairs; a county official needs groups ("these five households share
one picture"), so pairs are joined with union-find. Pairs within one household (a
retake of the same house) are not findings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .findings import AuditFinding, FindingKind, FindingSeverity, build_finding
from .records import MatchRecord, PhotoRecord
from .unionfind import UnionFind

__all__ = ["RELATIONS", "find_duplicate_clusters"]

RELATIONS = ("same_photo", "same_scene")


def find_duplicate_clusters(
    photos: Mapping[str, PhotoRecord], matches: Iterable[MatchRecord]
) -> list[AuditFinding]:
    """One finding per group of photos of two or more households linked by matches."""
    uf = UnionFind()
    edges: dict[object, list[MatchRecord]] = {}
    kept = []
    for m in matches:
        a, b = photos.get(m.photo_id), photos.get(m.other_photo_id)
        if a is None or b is None or m.relation not in RELATIONS:
            continue
        if a.household_id == b.household_id:
            continue
        uf.union(a.photo_id, b.photo_id)
        kept.append(m)
    for m in kept:
        edges.setdefault(uf.find(m.photo_id), []).append(m)
    out = []
    for group in uf.groups():
        links = edges.get(uf.find(group[0]), [])
        out.append(_cluster_finding([photos[p] for p in group], links))
    return out


def _cluster_finding(members: list[PhotoRecord], links: list[MatchRecord]) -> AuditFinding:
    same_photo = any(m.relation == "same_photo" for m in links)
    households = len({p.household_id for p in members})
    relation = "same_photo" if same_photo else "same_scene"
    evidence = {
        "relation": relation,
        "households": households,
        "pairs": [
            {
                "a": m.photo_id,
                "b": m.other_photo_id,
                "relation": m.relation,
                "distance": m.distance,
                "evidence": m.evidence or {},
            }
            for m in sorted(links, key=lambda m: (m.photo_id, m.other_photo_id))
        ],
    }
    if same_photo:
        zh = f"{households} 户使用了同一张照片"
        en = f"{households} households use the same photo"
    else:
        zh = f"{households} 户的照片拍的是同一处房屋"
        en = f"{households} households' photos show the same house"
    return build_finding(
        FindingKind.DUPLICATE_CLUSTER,
        FindingSeverity.HIGH if same_photo else FindingSeverity.MEDIUM,
        members,
        zh,
        en,
        evidence,
    )
