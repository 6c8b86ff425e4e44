"""Start-up check that files and records agree after a crash or kill.

Order of an upload: blob fsynced and renamed, then the row committed. So a crash can
leave (a) temp files of unfinished uploads, and (b) complete blobs with no row; it can
never leave a row without its blob, unless someone removed files by hand: those rows
are reported, never silently dropped. Temp files are deleted; orphan blobs are moved
to ``orphans/`` (kept for an operator, out of the store).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from .blobs import BlobStore
from .db import Database
from .models import Photo

__all__ = ["ReconcileReport", "reconcile"]

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    temp_removed: int = 0
    orphans_moved: list[str] = field(default_factory=list)  # sha256 of blobs with no row
    missing_blobs: list[int] = field(default_factory=list)  # photo ids whose blob is gone

    @property
    def clean(self) -> bool:
        return not (self.temp_removed or self.orphans_moved or self.missing_blobs)

    def to_json(self) -> dict[str, object]:
        return {
            "temp_removed": self.temp_removed,
            "orphans_moved": self.orphans_moved,
            "missing_blobs": self.missing_blobs,
        }


def reconcile(db: Database, blobs: BlobStore, orphan_dir: Path) -> ReconcileReport:
    """Make the blob store agree with the photos table; run before serving."""
    report = ReconcileReport()
    for tmp in blobs.tmp.iterdir():
        if tmp.is_file():
            tmp.unlink()
            report.temp_removed += 1
    with db.session() as session:
        rows = session.execute(select(Photo.id, Photo.sha256)).all()
    known = {sha for _, sha in rows}
    for photo_id, sha in rows:
        if not blobs.exists(sha):
            report.missing_blobs.append(photo_id)
    for sha, path in blobs.iter_blobs():
        if sha not in known:
            orphan_dir.mkdir(parents=True, exist_ok=True)
            path.replace(orphan_dir / sha)
            report.orphans_moved.append(sha)
    if report.missing_blobs:
        log.error("photos whose original file is missing: %s", report.missing_blobs)
    if report.orphans_moved or report.temp_removed:
        log.warning(
            "reconcile: removed %d unfinished uploads, moved %d orphan blobs to %s",
            report.temp_removed,
            len(report.orphans_moved),
            orphan_dir,
        )
    return report
