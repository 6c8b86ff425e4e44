"""Start-up check that stored blobs and records agree after a crash or kill.

Order of an upload: blob committed (local: fsync + link; S3: a checked PUT), then the
row. So a crash can leave (a) staging files of unfinished uploads, and (b) complete
blobs with no row; it can never leave a row without its blob, unless someone removed
blobs by hand: those rows are reported, never silently dropped. Staging files are
deleted; orphan blobs are moved out of the store (local ``orphans/``, S3
``PREFIX/orphans/``), kept for an operator.

Other processes may be uploading into the same store while this one starts: only
files and blobs older than ``grace_s`` are touched, so a blob committed a moment ago
whose row is about to be written is never taken for an orphan.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from sqlalchemy import select

from ..errors import BlobStoreUnavailable
from .blobs import BlobStore
from .db import Database
from .models import Photo

__all__ = ["GRACE_S", "ReconcileReport", "reconcile"]

log = logging.getLogger(__name__)

GRACE_S = 15 * 60.0  # far longer than any upload takes from its blob to its row


@dataclass
class ReconcileReport:
    temp_removed: int = 0
    orphans_moved: list[str] = field(default_factory=list)  # sha256 of blobs with no row
    missing_blobs: list[int] = field(default_factory=list)  # photo ids whose blob is gone
    error: str | None = None  # the store could not be listed: nothing was changed

    @property
    def clean(self) -> bool:
        return not (self.temp_removed or self.orphans_moved or self.missing_blobs or self.error)

    def to_json(self) -> dict[str, object]:
        return {
            "temp_removed": self.temp_removed,
            "orphans_moved": self.orphans_moved,
            "missing_blobs": self.missing_blobs,
            "error": self.error,
        }


def reconcile(db: Database, blobs: BlobStore, *, grace_s: float = GRACE_S) -> ReconcileReport:
    """Make the blob store agree with the photos table; run before serving.

    One listing of the store and one query (no request per photo). A store that
    cannot be reached is reported, not fatal: the service starts and answers 503 to
    uploads until the store is back."""
    report = ReconcileReport()
    report.temp_removed = blobs.clean_staging(grace_s)
    with db.session() as session:
        rows = session.execute(select(Photo.id, Photo.sha256)).all()
    known = {sha for _, sha in rows}
    cutoff = time.time() - grace_s
    try:
        stored: set[str] = set()
        for blob in blobs.iter_blobs():
            stored.add(blob.sha256)
            if blob.sha256 not in known and blob.modified <= cutoff:
                blobs.quarantine(blob.sha256)
                report.orphans_moved.append(blob.sha256)
    except BlobStoreUnavailable as exc:
        report.error = str(exc)
        log.error("reconcile skipped: %s", exc)
        return report
    report.missing_blobs = [pid for pid, sha in rows if sha not in stored]
    if report.missing_blobs:
        log.error("photos whose original is missing: %s", report.missing_blobs)
    if report.orphans_moved or report.temp_removed:
        log.warning(
            "reconcile: removed %d unfinished uploads, moved %d orphan blobs out of %s",
            report.temp_removed,
            len(report.orphans_moved),
            blobs.describe(),
        )
    return report
