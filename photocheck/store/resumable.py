"""Partial uploads that survive a broken connection (the storage half of tus 1.0).

Each upload is three files in ``<data>/partial/``: ``<id>.json`` (what it is for,
written once, atomically), ``<id>.part`` (the bytes received so far) and, once
checked, ``<id>.result.json`` (the answer, for a client that lost it). The offset is
the size of ``.part``: every write is fsynced before the offset is reported (at the
end of each PATCH, also one the client broke off), so a resumed upload continues
from the last byte durably stored and no acknowledged byte is ever lost.

One writer per upload at a time, across processes: an ``flock`` on ``.part``. A new
request for an upload whose previous connection broke waits for the old handler to
notice and let go. Expired uploads are removed by ``sweep``.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

__all__ = ["Appender", "PartialUpload", "PartialUploads", "UploadBusy", "UploadGone"]

_ID = re.compile(r"^[0-9a-f]{32}$")
FSYNC_EVERY = 1024 * 1024  # bytes between fsyncs inside one long PATCH


class UploadGone(Exception):
    """No such upload (never created, terminated, or expired and removed)."""


class UploadBusy(Exception):
    """Another request is still writing this upload."""


@dataclass
class PartialUpload:
    id: str
    user_id: int
    length: int
    metadata: dict[str, str]
    created_at: str
    expires_at: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def expires(self) -> dt.datetime:
        return dt.datetime.fromisoformat(self.expires_at)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class Appender:
    """Appends a PATCH body to ``.part``; fsyncs every ``FSYNC_EVERY`` bytes and at the end."""

    def __init__(self, fh: BinaryIO, offset: int, length: int) -> None:
        self._fh, self.offset, self.length = fh, offset, length
        self._unsynced = 0

    def write(self, chunk: bytes) -> None:
        if self.offset + len(chunk) > self.length:
            msg = "more bytes than the upload's length"
            raise ValueError(msg)
        self._fh.write(chunk)
        self.offset += len(chunk)
        self._unsynced += len(chunk)
        if self._unsynced >= FSYNC_EVERY:
            self.sync()

    def sync(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._unsynced = 0


class PartialUploads:
    def __init__(self, root: Path, expiry: dt.timedelta) -> None:
        self.root, self.expiry = Path(root), expiry
        self.root.mkdir(parents=True, exist_ok=True)
        self._swept = 0.0

    def sweep_now_and_then(self, every_s: float = 60.0) -> None:
        """``sweep``, at most once a minute (called as uploads are created)."""
        if time.monotonic() - self._swept >= every_s:
            self._swept = time.monotonic()
            self.sweep()

    def _path(self, upload_id: str, suffix: str) -> Path:
        if not _ID.match(upload_id):
            raise UploadGone(upload_id)
        return self.root / f"{upload_id}{suffix}"

    def create(
        self, user_id: int, length: int, metadata: dict[str, str], extra: dict[str, Any]
    ) -> PartialUpload:
        now = dt.datetime.now(dt.UTC)
        upload = PartialUpload(
            id=secrets.token_hex(16),
            user_id=user_id,
            length=length,
            metadata=metadata,
            created_at=now.isoformat(),
            expires_at=(now + self.expiry).isoformat(),
            extra=extra,
        )
        self._path(upload.id, ".part").touch(exist_ok=False)
        _write_atomic(self._path(upload.id, ".json"), json.dumps(asdict(upload)).encode())
        return upload

    def get(self, upload_id: str) -> PartialUpload:
        """The upload, unless unknown or expired (an expired one is removed here)."""
        try:
            raw = self._path(upload_id, ".json").read_bytes()
        except FileNotFoundError:
            raise UploadGone(upload_id) from None
        upload = PartialUpload(**json.loads(raw))
        if upload.expires < dt.datetime.now(dt.UTC):
            self.delete(upload_id)
            raise UploadGone(upload_id)
        return upload

    def offset(self, upload_id: str) -> int:
        try:
            return self._path(upload_id, ".part").stat().st_size
        except FileNotFoundError:
            raise UploadGone(upload_id) from None

    def part_path(self, upload_id: str) -> Path:
        return self._path(upload_id, ".part")

    @contextmanager
    def locked(self, upload_id: str, wait_s: float = 15.0) -> Iterator[BinaryIO]:
        """The ``.part`` file opened for appending, held against other writers."""
        try:  # never created here: a finished upload's bytes are gone for good
            fd = os.open(self._path(upload_id, ".part"), os.O_WRONLY | os.O_APPEND)
        except FileNotFoundError:
            raise UploadGone(upload_id) from None
        fh = os.fdopen(fd, "ab")
        try:
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise UploadBusy(upload_id) from None
                    time.sleep(0.02)
            if not self._path(upload_id, ".json").exists():  # terminated meanwhile
                raise UploadGone(upload_id)
            yield fh
        finally:
            fh.close()

    @staticmethod
    def appender(fh: BinaryIO, offset: int, length: int) -> Appender:
        return Appender(fh, offset, length)

    def result(self, upload_id: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._path(upload_id, ".result.json").read_bytes())
        except FileNotFoundError:
            return None

    def save_result(self, upload_id: str, body: dict[str, Any]) -> None:
        """Keep the answer (until expiry) for a client that lost it; the bytes are gone."""
        _write_atomic(self._path(upload_id, ".result.json"), json.dumps(body).encode())

    def delete(self, upload_id: str) -> None:
        for suffix in (".json", ".part", ".result.json", ".json.tmp", ".result.json.tmp"):
            self._path(upload_id, suffix).unlink(missing_ok=True)

    def sweep(self) -> int:
        """Remove expired uploads (and their bytes); returns how many."""
        removed = 0
        for info in self.root.glob("*.json"):
            upload_id = info.name.split(".")[0]
            if not _ID.match(upload_id) or info.name != f"{upload_id}.json":
                continue
            try:
                self.get(upload_id)
            except UploadGone:
                removed += 1
            except (ValueError, TypeError, json.JSONDecodeError):
                self.delete(upload_id)  # an unreadable record is no upload
                removed += 1
        cutoff = time.time() - 3600  # a record being created right now is left alone
        for stray in self.root.glob("*.part"):  # bytes whose record was never written
            if not stray.with_suffix(".json").exists() and stray.stat().st_mtime < cutoff:
                stray.unlink(missing_ok=True)
        return removed
