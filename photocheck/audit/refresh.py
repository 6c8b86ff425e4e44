"""One county's findings recomputed and saved: the only refresh implementation.

The service's background refresh (thread or job), the "refresh now" button and the
job queue's ``audit_refresh`` handler all call ``refresh_county``. Reading and
computing happen outside ``Database.write()``; only the save takes it (and the
per-county database lock inside ``save_findings``), so any number of processes may
refresh at once and the last save wins with complete data. Idempotent: running it
twice saves the same findings.

A refresh reads the whole county (~0.05 ms of CPU per photo, ``bench_audit.py
--stored``), so its cost grows with the county while uploads keep coming. Background
refreshes (``refresh_due``: the service's thread and the queue's job) are therefore
spaced: a county is refreshed again only ``spacing`` times its last refresh's duration
after that one, whichever process ran it (the duration is in the database), and one
process at a time refreshes a county (``claim_refresh``). A county's refreshes then take
at most 1/``spacing`` of a core however many workers and uploads there are; a small
county (a refresh of 0.1 s) waits 3 s at the default, as the debounce does anyway. An
explicit "refresh now" is never spaced.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from tqdm import tqdm

from ..store.db import Database
from .engine import AuditConfig, compute_findings
from .storage import (
    RefreshResult,
    claim_refresh,
    counties_with_pending,
    fill_legacy_thumbnails,
    last_refreshes,
    load_county,
    save_findings,
)
from .tables import AuditRefresh

__all__ = [
    "REFRESH_SPACING",
    "BlobReader",
    "DueRefreshes",
    "refresh_county",
    "refresh_due",
    "refresh_wait",
    "stale_since",
]

REFRESH_SPACING = 30.0  # a background refresh waits this many times the last one's duration

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


def refresh_wait(last: AuditRefresh | None, now: dt.datetime, spacing: float) -> float:
    """Seconds until a background refresh of the county is due (0: now)."""
    if last is None or spacing <= 0:
        return 0.0
    due = last.computed_at + dt.timedelta(seconds=spacing * last.seconds)
    return max(0.0, (due - now).total_seconds())


def stale_since(last: AuditRefresh | None, since: dt.datetime) -> bool:
    """Did the county's last refresh start before ``since`` (matches changed then)?

    Its start (``computed_at`` minus its duration) is before its load, so a refresh
    that may have read the county before the change never counts as including it."""
    if last is None:
        return True
    return last.computed_at - dt.timedelta(seconds=last.seconds) < since


@dataclass
class DueRefreshes:
    """What ``refresh_due`` did: the counties refreshed, and the seconds until each
    county left for later is due (not yet, or another process was refreshing it)."""

    done: list[int] = field(default_factory=list)
    later: dict[int, float] = field(default_factory=dict)


def refresh_due(
    db: Database,
    refresh: Callable[[int], object],
    *,
    spacing: float = REFRESH_SPACING,
    also: Mapping[int, dt.datetime] | None = None,
) -> DueRefreshes:
    """The background refresh, by ``refresh(county_id)``: every county with pending
    photos, and every county of ``also`` (matches changed after the answer, at that
    time) not refreshed since, that is due and that no other process is refreshing.
    The others are left for later, with the seconds until they are due: the caller
    looks again then (a thread's timer, a delayed job)."""
    also = also or {}
    with db.session() as session:
        pending = set(counties_with_pending(session))
        last = last_refreshes(session, pending | set(also))
    stale = {c for c, since in also.items() if stale_since(last.get(c), since)}
    out = DueRefreshes()
    now = dt.datetime.now(dt.UTC)
    for county_id in sorted(pending | stale):
        wait = refresh_wait(last.get(county_id), now, spacing)
        if wait > 0:
            out.later[county_id] = wait
            continue
        with claim_refresh(db, county_id) as claimed:
            if not claimed:  # another process is at it: look again after a debounce
                out.later[county_id] = 1.0
                continue
            refresh(county_id)
            out.done.append(county_id)
    return out
