"""The database handle: engine, sessions and the one write lock.

Every write goes through ``Database.write()``: a fresh session opened *inside* a
process-wide lock and committed before the lock is released. On SQLite (WAL) this
avoids SQLITE_BUSY_SNAPSHOT (a reader upgrading to writer on a stale snapshot), and it
is the critical section in which the duplicate index is queried and extended, so two
uploads of the same photo can never both pass. Readers never take the lock.

On PostgreSQL several processes (``serve --workers N``, other machines) write at once,
so ``write()`` also takes a transaction-level advisory lock (``WRITE_LOCK``) as its
first statement: the same critical section across every process, released by the
commit or rollback, and by PostgreSQL itself when a process dies holding it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["WRITE_LOCK", "Database"]

WRITE_LOCK = 0x70686F746F  # pg_advisory_xact_lock key of Database.write() ("photo")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL, not NORMAL: an upload answered 201 must survive power loss, not only a
    # process crash. Measured (bench_upload.py): the commit is ~0.8 ms of an upload's
    # ~110 ms with one client; with 8, the write lock's wait is GIL contention inside
    # the lock, not the fsync. NORMAL would save little and lose answered uploads.
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")  # other processes (the CLI) may write too
    cur.close()


class Database:
    """Engine + session factory + write lock. Create one per process and share it."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"echo": echo}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 10}
            if ":memory:" not in url:
                # 8 uploads' threads, the jobs, the audit and the page requests at once:
                # with the default 5 an overflow connection was opened (and its pragmas
                # run) for one request and closed again
                kwargs.update(pool_size=16, max_overflow=16)
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine: Engine = create_engine(url, **kwargs)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.write_lock = threading.RLock()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self) -> Session:
        """A session for reading (and for writes made through ``write()`` later)."""
        return self.sessions()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A fresh session inside the write lock; committed on success, rolled back on error."""
        with self.write_lock, self.sessions() as session:
            try:
                if self.dialect == "postgresql":
                    session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": WRITE_LOCK})
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        self.engine.dispose()
