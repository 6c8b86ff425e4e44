"""One writer per partial upload at a time, across processes and machines.

A partial upload in S3 cannot be ``flock``ed, so its writers take a lock elsewhere:

* ``PgUploadLocks`` (the database is PostgreSQL: any number of machines): a session
  advisory lock ``pg_advisory_lock(NAMESPACE, key)`` on a connection of its own, held
  for the whole request. PostgreSQL releases it when the holder's connection ends, so
  a worker that dies (``kill -9``, machine lost) never leaves an upload locked. A
  waiter blocks inside PostgreSQL (``lock_timeout``), where the holder sees it in
  ``pg_locks``: that is how a resumed request on another machine asks the PATCH of a
  silently dead link to let go (``HeldLock.contended``).
* ``FileUploadLocks`` (SQLite: one machine): ``flock`` on ``<dir>/<id>.lock``.

The guarantee: while a request holds the lock, no other request changes that
upload's bytes (the S3 store also writes each piece with ``If-None-Match: *``, so
two writers that somehow both believed they held it could not both add bytes at the
same offset). Cost: one PostgreSQL connection per request in progress on an upload
(pooled; a PATCH over a slow link holds it for its duration).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import DBAPIError

from .resumable import WAIT_S, UploadBusy, check_id

__all__ = ["FileUploadLocks", "HeldLock", "PgUploadLocks", "UploadLocks"]

NAMESPACE = 0x7475  # "tu": the first key of every upload lock (the write lock is one bigint)


class HeldLock:
    """A held lock; ``contended`` says whether another request waits for it."""

    def contended(self) -> bool:
        return False


class UploadLocks(ABC):
    @abstractmethod
    def hold(self, upload_id: str, wait_s: float) -> contextlib.AbstractContextManager[HeldLock]:
        """:exception UploadBusy: still held by another request after ``wait_s``."""

    cross_process = False  # True: a holder sees waiters of other processes (contended)

    def sweep(self) -> None:
        """Drop what the locks keep for uploads long gone (nothing, mostly)."""
        return None

    def close(self) -> None:
        return None


class FileUploadLocks(UploadLocks):
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, upload_id: str) -> Path:
        return self.root / f"{check_id(upload_id)}.lock"

    @contextmanager
    def hold(self, upload_id: str, wait_s: float) -> Iterator[HeldLock]:
        fd = os.open(self._path(upload_id), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise UploadBusy(upload_id) from None
                    time.sleep(0.02)
            yield HeldLock()
        finally:
            os.close(fd)

    def sweep(self) -> None:
        """Lock files untouched for an hour (a late request finds no upload anyway)."""
        cutoff = time.time() - 3600
        for path in self.root.glob("*.lock"):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _key(upload_id: str) -> int:
    """28 bits of the (random) ID: a positive int4. Two uploads that share a key only
    wait for each other, which at 2^-28 per pair nobody notices."""
    return int(check_id(upload_id)[:7], 16)


_WAITERS = text(
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    " AND classid = :ns AND objid = :key AND objsubid = 2"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))"
)


class _PgHeld(HeldLock):
    def __init__(self, conn: Any, key: int) -> None:
        self._conn, self._key = conn, key
        self._mutex = threading.Lock()  # the release watcher and the request share conn

    def contended(self) -> bool:
        with self._mutex:
            return bool(self._conn.execute(_WAITERS, {"ns": NAMESPACE, "key": self._key}).scalar())

    def unlock(self) -> None:
        with self._mutex:
            self._conn.execute(
                text("SELECT pg_advisory_unlock(:ns, :key)"), {"ns": NAMESPACE, "key": self._key}
            )


class PgUploadLocks(UploadLocks):
    cross_process = True

    def __init__(self, url: str) -> None:
        # own pool, autocommit: a lock held for a long PATCH is no open transaction and
        # takes no connection from the requests' pool; lock_timeout set once per connection
        parsed = make_url(url)
        options = f"{parsed.query.get('options', '')} -c lock_timeout={_ms(WAIT_S)}".strip()
        self.engine = create_engine(
            parsed.update_query_dict({"options": options}),
            isolation_level="AUTOCOMMIT",
            pool_size=4,
            max_overflow=-1,
            pool_pre_ping=True,
        )

    @contextmanager
    def hold(self, upload_id: str, wait_s: float) -> Iterator[HeldLock]:
        key = _key(upload_id)
        conn = self.engine.connect()
        held: _PgHeld | None = None
        try:
            if wait_s != WAIT_S:
                conn.execute(text(f"SET lock_timeout = {_ms(wait_s)}"))
            try:
                conn.execute(
                    text("SELECT pg_advisory_lock(:ns, :key)"), {"ns": NAMESPACE, "key": key}
                )
            except DBAPIError as exc:
                if getattr(exc.orig, "sqlstate", None) == "55P03":  # lock_not_available
                    raise UploadBusy(upload_id) from None
                raise
            finally:
                if wait_s != WAIT_S:
                    conn.execute(text(f"SET lock_timeout = {_ms(WAIT_S)}"))
            held = _PgHeld(conn, key)
            yield held
        finally:
            try:
                if held is not None:
                    held.unlock()
            except DBAPIError:
                conn.invalidate()  # the session (and so its lock) ends with the connection
            finally:
                conn.close()

    def close(self) -> None:
        self.engine.dispose()
