"""One county's findings recomputed and saved: the only refresh implementation.

The service's background refresh (thread or job), the "refresh now" button and the
job queue's ``audit_refresh`` handler all call ``refresh_county``. Reading and
computing happen outside ``Database.write()``; only the save takes it (and the
per-county database lock inside ``save_findings``), so any number of processes may
refresh at once and the last save wins with complete data. Idempotent: running it
twice saves the same findings.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from tqdm import tqdm

from ..store.db import Database
from .engine import AuditConfig, compute_findings
from .storage import (
    RefreshResult,
    counties_with_pending,
    fill_legacy_thumbnails,
    load_county,
    save_findings,
)

__all__ = ["BlobReader", "refresh_county", "refresh_pending"]

BlobReader = Callable[[str], bytes | None]  # a blob's relative path -> bytes (None: missing)


def refresh_county(
    db: Database,
    county_id: int,
    config: AuditConfig,
    read_blob: BlobReader,
    *,
    max_pixels: int,
    show_progress: bool = False,
) -> RefreshResult:
    """Load, compute and save one county's findings (synchronously)."""
    started = time.perf_counter()
    with db.session() as session:
        data = load_county(session, county_id)

    def progress(ids: list[str]) -> Iterable[str]:
        return tqdm(ids, desc="thumbnails", unit="photo", disable=not show_progress)

    fill_legacy_thumbnails(data, read_blob, max_pixels=max_pixels, progress=progress)
    findings = compute_findings(data.photos, data.villages, data.matches, config)
    with db.write() as session:
        return save_findings(
            session, county_id, data, findings, seconds=time.perf_counter() - started
        )


def refresh_pending(
    db: Database, config: AuditConfig, read_blob: BlobReader, *, max_pixels: int
) -> dict[int, RefreshResult]:
    """The ``audit_refresh`` job: every county with photos its findings do not include."""
    with db.session() as session:
        counties = counties_with_pending(session)
    return {c: refresh_county(db, c, config, read_blob, max_pixels=max_pixels) for c in counties}
