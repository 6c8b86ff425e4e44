"""Background jobs through a PostgreSQL job queue (pgqueuer), or on threads.

Why pgqueuer (see README "Scale out"): a job held by a worker that died is picked
again by another once its heartbeat is older than ``heartbeat_s`` -- built into the
dequeue query (``FOR UPDATE SKIP LOCKED`` over queued jobs *and* stale picked ones),
so recovery needs no sweeper of ours; it runs on psycopg 3, and its SQL enqueue can
run inside our own transaction, so a job exists exactly when the row it is about
was committed. Delivery is at least once, so every handler here is idempotent: it
looks at the database and does only what is still missing.

Jobs (the payload's ``key`` is the photo id where there is one):

- ``scene_check {key}``: the photo's scene check after the answer
  (``Intake.run_scene_check``, idempotent; it makes the features too). Enqueued in
  the photo's own transaction (``QueueJobs.photo_stored``), so a worker that died
  after the commit loses nothing: another one picks the job. A serve process that
  runs jobs (``run_here``) checks its own uploads at once on its threads, from the
  pixels it decoded for the answer (decoded once, no queue poll); the queued job then
  waits ``local_grace_s`` (``LOCAL_GRACE_S``, ``PHOTOCHECK_JOB_LOCAL_GRACE_S``) and
  finds the photo checked (a no-op) unless that process died first.
- ``scene_backfill {}``: features for every stored photo without them (older
  formats too), queued once at start-up instead of a thread in every process.
- ``audit_refresh {}``: recompute the findings of every due county with photos the
  stored findings do not include (state in the database, so a skipped or repeated
  job loses nothing; ``audit.refresh.refresh_due`` spaces a county's refreshes by their
  cost). Enqueued with each photo, deduplicated while one is queued.
  ``audit_refresh {county, since}``: that county too if not refreshed since (a scene
  check's later matches), and a county left for later, delayed until it is due
  (``refresh_later``; one queued per county).

``QueueJobs`` is the PostgreSQL implementation of the ``Jobs`` interface
(``photocheck.store.jobs``); the embedded default (SQLite) has no queue: the same work
runs on the process's own threads (``ThreadJobs``, backfill, ``AuditWorker``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import make_url, text
from sqlalchemy.orm import Session

from .store.jobs import ThreadJobs

if TYPE_CHECKING:
    from .store.db import Database

__all__ = [
    "AUDIT_REFRESH",
    "SCENE_BACKFILL",
    "SCENE_CHECK",
    "Handler",
    "JobRunner",
    "QueueJobs",
    "enqueue",
    "install",
    "psycopg_conninfo",
]

log = logging.getLogger(__name__)

SCENE_CHECK = "scene_check"  # = photocheck.store.intake.SCENE_CHECK
SCENE_BACKFILL = "scene_backfill"
AUDIT_REFRESH = "audit_refresh"
AUDIT_DELAY_S = 3.0  # a burst of uploads gives one refresh (debounce)
SCENE_PRIORITY = 10  # scene checks before backfills and audit refreshes (priority 0)
LOCAL_GRACE_S = 15.0  # a scene check run here: the queue's copy waits this long first
INSTALL_LOCK = 0x6A6F6273  # pg_advisory_lock key: one install at a time ("jobs")

Handler = Callable[[dict[str, Any]], None]  # a payload -> done (raises: retried)


def psycopg_conninfo(database_url: str) -> str:
    """The SQLAlchemy URL as a libpq URI (``postgresql+psycopg://`` -> ``postgresql://``)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(False)


def enqueue(
    session: Session,
    entrypoint: str,
    payload: dict[str, Any],
    *,
    delay_s: float = 0.0,
    dedupe_key: str | None = None,
    priority: int = 0,
) -> None:
    """Add a job in the session's transaction (PostgreSQL); nothing on SQLite.

    pgqueuer's own enqueue statement, run on our connection: committed or rolled back
    with the row the job is about. A ``dedupe_key`` already queued is skipped; a higher
    ``priority`` is picked first (``SCENE_PRIORITY``)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    from pgqueuer.adapters.persistence.qb import QueryQueueBuilder
    from psycopg import RawCursor

    raw: Any = session.connection().connection.driver_connection
    with RawCursor(raw) as cur:
        cur.execute(
            QueryQueueBuilder().build_enqueue_query("skip"),
            (
                [priority],
                [entrypoint],
                [json.dumps(payload).encode()],
                [timedelta(seconds=delay_s)],
                [dedupe_key],
                ["{}"],
            ),
        )


def refresh_later(
    session: Session, later: Mapping[int, float], since: Mapping[int, datetime]
) -> None:
    """Delayed ``audit_refresh`` jobs, one per county, due when the county is."""
    for county_id, wait in later.items():
        payload = {"county": county_id, "since": since[county_id].isoformat()}
        key = f"{AUDIT_REFRESH}:{county_id}"
        enqueue(session, AUDIT_REFRESH, payload, delay_s=wait, dedupe_key=key)


def refresh_payload(payload: Mapping[str, Any]) -> dict[int, datetime]:
    """The county of an ``audit_refresh`` job and since when it is stale, if any."""
    if "county" not in payload:
        return {}
    return {int(payload["county"]): datetime.fromisoformat(str(payload["since"]))}


class QueueJobs:
    """The ``Jobs`` interface (``photocheck.store.jobs``) on the PostgreSQL queue: any
    worker process runs the job, at least once (``key`` is the payload's ``key``)."""

    def __init__(self, db: Database, local_grace_s: float = LOCAL_GRACE_S) -> None:
        self.db = db
        self.local_grace_s = local_grace_s
        self.local: ThreadJobs | None = None  # this process's threads (``run_here``)

    def run_here(self, handlers: dict[str, Callable[[int], None]]) -> None:
        """Check this process's own uploads on its own threads right after their commit
        (a serve process that runs jobs); the queue keeps the durable copy."""
        self.local = ThreadJobs(handlers)

    def committed(self, kind: str, key: int) -> None:
        """After the photo's transaction committed: its check starts here, if ``run_here``."""
        if self.local is not None:
            self.local.enqueue(kind, key)

    def stats(self) -> dict[str, dict[str, float]]:
        return self.local.stats() if self.local is not None else {}

    def enqueue(self, kind: str, key: int) -> None:
        """A job in a transaction of its own (start-up: photos still unchecked)."""
        with self.db.session() as session:
            priority = SCENE_PRIORITY if kind == SCENE_CHECK else 0
            enqueue(session, kind, {"key": key}, dedupe_key=f"{kind}:{key}", priority=priority)
            session.commit()

    def drain(self, timeout: float | None = None, kind: str = SCENE_CHECK) -> bool:
        """Wait until no ``kind`` job is queued or running, whichever worker runs it
        (tests, benchmarks); False on timeout. For ``scene_check``: until every photo
        is checked (the queue's delayed copies of checks made here do not count)."""
        from pgqueuer.adapters.persistence.qb import QueryBuilderEnvironment

        table = QueryBuilderEnvironment().settings.queue_table
        query = text(f"SELECT count(*) FROM {table} WHERE entrypoint = :kind")
        if kind == SCENE_CHECK:
            query = text("SELECT count(*) FROM photos WHERE NOT scene_checked")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self.db.session() as session:
                if not session.scalar(query, {"kind": kind}):
                    return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.1)

    def photo_stored(self, session: Session, photo_id: int, *, scene_check: bool) -> None:
        """The jobs of a photo just stored, in the transaction that stores it."""
        if scene_check:
            key = f"{SCENE_CHECK}:{photo_id}"
            delay = self.local_grace_s if self.local is not None else 0.0  # see ``run_here``
            enqueue(
                session,
                SCENE_CHECK,
                {"key": photo_id},
                delay_s=delay,
                dedupe_key=key,
                priority=SCENE_PRIORITY,
            )
        enqueue(session, AUDIT_REFRESH, {}, delay_s=AUDIT_DELAY_S, dedupe_key=AUDIT_REFRESH)


def install(database_url: str) -> None:
    """Create pgqueuer's tables if they are missing (idempotent, one process at a time).

    Synchronous on purpose: it runs inside uvicorn workers' event loop too."""
    import psycopg
    from pgqueuer.adapters.persistence.qb import QueryBuilderEnvironment
    from psycopg import RawCursor

    qbe = QueryBuilderEnvironment()
    with psycopg.connect(psycopg_conninfo(database_url), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (INSTALL_LOCK,))
        try:
            with RawCursor(conn) as cur:
                cur.execute(qbe.build_has_table_query(), (qbe.settings.queue_table,))
                row = cur.fetchone()
                if not (row and row[0]):
                    cur.execute(qbe.build_install_query())
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (INSTALL_LOCK,))


@dataclass
class JobRunner:
    """Runs the jobs of the queue on a thread of its own (its own event loop); each
    handler runs in a worker thread (``asyncio.to_thread``: our code is synchronous).
    A lost connection (PostgreSQL restarting) is retried every ``retry_s``."""

    database_url: str
    handlers: dict[str, Handler]
    concurrency: int = 2
    heartbeat_s: float = 30.0
    retry_s: float = 1.0
    done: int = 0  # jobs finished by this runner (tests, benchmarks)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _qm: Any = None
    _loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> JobRunner:
        self._thread = threading.Thread(target=self.run, name="job-runner", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._loop is not None and self._qm is not None:
            self._loop.call_soon_threadsafe(self._shutdown, self._qm)
        if self._thread is not None:
            self._thread.join(timeout)

    @staticmethod
    def _shutdown(qm: Any) -> None:
        """Stop the queue manager, and wake its NOTIFY listener now: it waits for
        notifications holding the connection for up to a second at a time, and the
        manager's last queries (the finished jobs' log, the heartbeats) queue behind it
        (a stop took 0.9-2.0 s, each serve process and test server on PostgreSQL). The
        listener waits on an idle connection, so cancelling it leaves the connection
        usable for those queries."""
        qm.shutdown.set()
        driver = getattr(qm.queries, "driver", None)
        tasks = getattr(getattr(driver, "tm", None), "tasks", None)
        if driver is None or tasks is None:  # another pgqueuer 1.x: it stops within ~2 s
            return
        driver.shutdown.set()  # its loop ends instead of listening again
        for task in list(tasks):  # the listener (the driver's only task, pgqueuer 1.6)
            task.cancel()

    def run(self) -> None:
        """Until ``stop()``: connect, work, and on a lost connection start again."""
        while not self._stop.is_set():
            try:
                asyncio.run(self._serve())
            except Exception as exc:  # a lost connection, PostgreSQL restarting
                log.warning("job runner: %s: %s; retrying", type(exc).__name__, exc)
            self._stop.wait(self.retry_s)

    async def _serve(self) -> None:
        import psycopg
        from pgqueuer.db import PsycopgDriver
        from pgqueuer.qm import QueueManager
        from pgqueuer.queries import Queries

        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(install, self.database_url)
        async with await psycopg.AsyncConnection.connect(
            psycopg_conninfo(self.database_url), autocommit=True
        ) as conn:
            qm = QueueManager(Queries(PsycopgDriver(conn)))
            for name, handler in self.handlers.items():
                qm.entrypoint(name)(self._wrap(handler))
            self._qm = qm
            if self._stop.is_set():
                return
            await qm.run(
                dequeue_timeout=timedelta(seconds=1),
                batch_size=self.concurrency,
                max_concurrent_tasks=2 * self.concurrency,
                heartbeat_timeout=timedelta(seconds=self.heartbeat_s),
                log_aggregation_interval=timedelta(0),
                shutdown_on_listener_failure=True,  # a lost connection: reconnect
            )

    def _wrap(self, handler: Handler) -> Callable[[Any], Any]:
        async def entry(job: Any) -> None:
            payload = json.loads(job.payload) if job.payload else {}
            await asyncio.to_thread(handler, payload)
            self.done += 1

        return entry
