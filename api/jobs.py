"""The job handlers of this service and ``photocheck worker``.

The handlers are the library's (``Intake.job_handlers()``, ``backfill_scene_features``,
``audit.refresh.refresh_due``) bound to this process's state; the queue is
``photocheck.jobs`` (PostgreSQL only: the embedded default runs the same work on
threads).
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
from collections.abc import Callable, Mapping
from typing import Any

from photocheck import jobs
from photocheck.audit.refresh import refresh_due

from .audit import SCENE_DELAY_S, refresh_county
from .settings import Settings
from .state import AppState

__all__ = ["handlers", "job_runner", "run_worker"]

log = logging.getLogger("api.jobs")


def handlers(state: AppState) -> dict[str, jobs.Handler]:
    def keyed(handler: Callable[[int], None]) -> jobs.Handler:
        return lambda payload: handler(int(payload["key"]))

    def scene_backfill(_: dict[str, Any]) -> None:
        state.intake.backfill_scene_features()

    def audit_refresh(payload: dict[str, Any]) -> None:
        also = jobs.refresh_payload(payload)
        due = refresh_due(
            state.db,
            lambda county: refresh_county(state, county),
            spacing=state.settings.AUDIT_SPACING,
            also=also,
        )
        now = dt.datetime.now(dt.UTC)
        _refresh_later(state, due.later, {c: also.get(c, now) for c in due.later})

    if state.intake.on_scene_matches is None:  # `photocheck worker`: no AuditWorker here
        # a scene check's later matches: that county's findings now, not at the next upload
        state.intake.on_scene_matches = lambda _photo, county: _refresh_one(state, county)
    found = {kind: keyed(h) for kind, h in state.intake.job_handlers().items()}
    if state.recheck is not None:  # the look-back re-check's batches
        found |= {kind: keyed(h) for kind, h in state.recheck.job_handlers().items()}
    return found | {jobs.SCENE_BACKFILL: scene_backfill, jobs.AUDIT_REFRESH: audit_refresh}


def _refresh_one(state: AppState, county_id: int) -> None:
    """A scene check's later matches: the county's refresh soon, in its own job (spaced
    like any background refresh), not inside the check."""
    since = {county_id: dt.datetime.now(dt.UTC)}
    _refresh_later(state, {county_id: SCENE_DELAY_S}, since)


def _refresh_later(
    state: AppState, later: Mapping[int, float], since: Mapping[int, dt.datetime]
) -> None:
    if later:
        with state.db.session() as session:
            jobs.refresh_later(session, later, since)
            session.commit()


def job_runner(state: AppState, concurrency: int = 2) -> jobs.JobRunner | None:
    """A runner over the PostgreSQL queue; None on SQLite (no queue there)."""
    if state.db.dialect != "postgresql":
        return None
    return jobs.JobRunner(
        state.settings.database_url,
        handlers(state),
        concurrency=concurrency,
        heartbeat_s=state.settings.JOB_HEARTBEAT_S,
    )


def run_worker(concurrency: int = 2, settings: Settings | None = None) -> int:
    """``photocheck worker``: background jobs only, until SIGTERM or SIGINT."""
    from .main import build_state

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = settings or Settings()
    state = build_state(settings, index=False)
    runner = job_runner(state, concurrency)
    if runner is None:
        print("photocheck: `worker` needs PostgreSQL (PHOTOCHECK_DATABASE_URL)")
        return 2
    # the scene checks' candidates: the index as serve loads it (the snapshot in
    # DATA_DIR/dupindex, then the photos above it), before the first job, not by it
    count = state.intake.load_index()
    log.info("photocheck worker: %d photos in the index (%s)", count, state.intake.loaded_from)
    state.intake.follow()  # other processes' uploads; a snapshot every SNAPSHOT_EVERY photos
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    runner.start()
    log.info("photocheck worker: running jobs (concurrency %d)", concurrency)
    stop.wait()
    runner.stop()
    state.intake.stop_following()
    state.db.dispose()
    return 0
