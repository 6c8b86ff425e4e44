"""The county audit: cross-household findings, progress ranking and reports.

Inputs are plain records (``records.py``) so every algorithm runs without a database;
the API maps its tables onto them. ``compute_findings`` gives every finding of a
county; ``compute_progress`` the daily ranking.
"""

from __future__ import annotations

from .batches import BatchThresholds, find_desk_batches, find_fast_movers
from .clusters import find_duplicate_clusters
from .engine import AuditConfig, compute_findings
from .findings import KIND_LABELS, AuditFinding, FindingKind, FindingSeverity, finding_id
from .progress import (
    HouseholdState,
    ProgressRow,
    ProgressTable,
    compute_progress,
    progress_csv,
    progress_xlsx,
)
from .records import (
    CHINA_TZ,
    AppCapture,
    HouseholdRecord,
    MatchRecord,
    PhotoRecord,
    ThumbnailCheck,
    VillageRecord,
)
from .single import SingleThresholds, single_photo_findings

__all__ = [
    "CHINA_TZ",
    "KIND_LABELS",
    "AppCapture",
    "AuditConfig",
    "AuditFinding",
    "BatchThresholds",
    "FindingKind",
    "FindingSeverity",
    "HouseholdRecord",
    "HouseholdState",
    "MatchRecord",
    "PhotoRecord",
    "ProgressRow",
    "ProgressTable",
    "SingleThresholds",
    "ThumbnailCheck",
    "VillageRecord",
    "compute_findings",
    "compute_progress",
    "find_desk_batches",
    "find_duplicate_clusters",
    "find_fast_movers",
    "finding_id",
    "progress_csv",
    "progress_xlsx",
    "single_photo_findings",
]
