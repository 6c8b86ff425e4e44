"""The audit's output: one finding per doubtful photo or group of photos.

A finding's ID is a hash of its kind and its sorted photo IDs, so computing the
findings again (every night, or after each upload) yields the same IDs and a stored
decision stays attached to its finding.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .records import CHINA_TZ, PhotoRecord

__all__ = [
    "KIND_LABELS",
    "AuditFinding",
    "FindingKind",
    "FindingSeverity",
    "build_finding",
    "finding_id",
]


class FindingKind(enum.StrEnum):
    PHOTO_REASON = "photo_reason"  # the upload check already flagged it (review/reject)
    DUPLICATE_CLUSTER = "duplicate_cluster"  # same photo/scene across households
    DESK_BATCH = "desk_batch"  # many households shot from one spot within minutes
    FAST_MOVER = "fast_mover"  # verifier moving implausibly fast between households
    OUTSIDE_CAMPAIGN = "outside_campaign"  # capture time outside the campaign window
    THUMBNAIL_MISMATCH = "thumbnail_mismatch"  # EXIF thumbnail shows another picture
    METADATA_MISSING = "metadata_missing"  # app says in-app capture, camera EXIF absent
    GPS_FAR = "gps_far"  # GPS far from the household's village


class FindingSeverity(enum.StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


KIND_LABELS: dict[FindingKind, tuple[str, str]] = {
    FindingKind.PHOTO_REASON: ("照片检查问题", "Photo check issue"),
    FindingKind.DUPLICATE_CLUSTER: ("重复照片（跨户）", "Duplicate photos across households"),
    FindingKind.DESK_BATCH: ("疑似集中代拍", "Suspected desk-made batch"),
    FindingKind.FAST_MOVER: ("移动速度异常", "Implausibly fast movement"),
    FindingKind.OUTSIDE_CAMPAIGN: ("拍摄时间不在核验期内", "Captured outside the campaign"),
    FindingKind.THUMBNAIL_MISMATCH: ("缩略图与照片不符", "EXIF thumbnail does not match"),
    FindingKind.METADATA_MISSING: ("应用内拍摄但缺相机信息", "In-app capture without camera data"),
    FindingKind.GPS_FAR: ("定位远离本村", "GPS far from the village"),
}


def finding_id(kind: FindingKind | str, photo_ids: Iterable[str]) -> str:
    """Stable ID: the same kind over the same photos gives the same ID."""
    return _hash_id(kind, sorted(str(p) for p in photo_ids))


def _hash_id(kind: FindingKind | str, sorted_ids: Sequence[str]) -> str:
    key = str(kind) + "|" + ",".join(sorted_ids)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class AuditFinding:
    id: str
    kind: FindingKind
    severity: FindingSeverity
    photo_ids: tuple[str, ...]
    household_ids: tuple[str, ...]
    village_ids: tuple[str, ...]
    towns: tuple[str, ...]
    summary_zh: str
    summary_en: str
    evidence: dict[str, Any] = field(default_factory=dict)
    day: dt.date | None = None  # local day the photos were uploaded (filed), else taken

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "severity": self.severity.value,
            "photo_ids": list(self.photo_ids),
            "household_ids": list(self.household_ids),
            "village_ids": list(self.village_ids),
            "towns": list(self.towns),
            "summary_zh": self.summary_zh,
            "summary_en": self.summary_en,
            "evidence": self.evidence,
            "day": self.day.isoformat() if self.day else None,
        }


def _day(photo: PhotoRecord) -> dt.date | None:
    """The filing date: the server's upload day (China time). The EXIF date is evidence a
    verifier's camera wrote, not when the photo was filed; it stands in only for records
    without an upload time (offline sets)."""
    if photo.uploaded_at is not None:
        return photo.uploaded_at.astimezone(CHINA_TZ).date()
    # ``taken_at`` without building it: dropping a tzinfo never changes the date
    when = photo.captured_at
    if when is None and photo.app is not None:
        when = photo.app.captured_at
    return when.date() if when is not None else None


def build_finding(
    kind: FindingKind,
    severity: FindingSeverity,
    photos: Iterable[PhotoRecord],
    summary_zh: str,
    summary_en: str,
    evidence: dict[str, Any],
) -> AuditFinding:
    """A finding over ``photos``: IDs, households, villages and day filled in from them."""
    ps = list(photos)
    if len(ps) == 1:  # most findings: one photo, nothing to sort or deduplicate
        (p,) = ps
        day = _day(p)
        return AuditFinding(
            id=_hash_id(kind, (str(p.photo_id),)),
            kind=kind,
            severity=severity,
            photo_ids=(p.photo_id,),
            household_ids=(p.household_id,),
            village_ids=(p.village_id,),
            towns=(p.town,),
            summary_zh=summary_zh,
            summary_en=summary_en,
            evidence=evidence,
            day=day,
        )
    ps.sort(key=lambda p: p.photo_id)
    days = [d for d in (_day(p) for p in ps) if d is not None]
    return AuditFinding(
        id=finding_id(kind, (p.photo_id for p in ps)),
        kind=kind,
        severity=severity,
        photo_ids=tuple(p.photo_id for p in ps),
        household_ids=tuple(dict.fromkeys(p.household_id for p in ps)),
        village_ids=tuple(dict.fromkeys(p.village_id for p in ps)),
        towns=tuple(dict.fromkeys(p.town for p in ps)),
        summary_zh=summary_zh,
        summary_en=summary_en,
        evidence=evidence,
        day=min(days) if days else None,
    )
