"""Is the process that claimed an ``Idempotency-Key`` still alive?

Each service process takes an ID and holds a lock under it for its whole life: a
PostgreSQL session advisory lock (any number of machines), or an ``flock`` on a file in
the data folder (SQLite: one machine). The operating system or the database drops the
lock when the process dies, even by ``kill -9``; so a retry that can take the lock knows
nobody is working on its key any more and may start afresh at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import uuid
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, text

from photocheck.store import Database

__all__ = ["Liveness"]


def _lock_key(instance: str) -> int:
    return int.from_bytes(hashlib.sha256(instance.encode()).digest()[:8], "big", signed=True)


class Liveness:
    """This process's ID (``instance``), and whether another one's is still held."""

    def __init__(self, db: Database, data_dir: Path) -> None:
        self.instance = uuid.uuid4().hex
        self._db = db
        self._dir = data_dir / "instances"
        self._conn: Connection | None = None
        self._file: IO[str] | None = None
        if db.dialect == "postgresql":
            self._conn = db.engine.connect()  # held: the lock lives with this session
            self._conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _lock_key(self.instance)})
            self._conn.commit()
        else:
            self._dir.mkdir(parents=True, exist_ok=True)
            self._file = (self._dir / f"{self.instance}.lock").open("w")
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def is_alive(self, instance: str) -> bool:
        if instance == self.instance:
            return True
        if self._conn is not None:
            key = _lock_key(instance)
            with self._db.engine.connect() as conn:
                got = conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": key})
                if got:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
            return not got
        path = self._dir / f"{Path(instance).name}.lock"
        try:
            with path.open("a") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except FileNotFoundError:
            return False
        except BlockingIOError:
            return True
        path.unlink(missing_ok=True)  # its owner is gone: tidy up
        return False

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        if self._file is not None:
            self._file.close()
            (self._dir / f"{self.instance}.lock").unlink(missing_ok=True)
