"""Partial uploads that survive a broken connection (the storage half of tus 1.0).

One interface, two stores, chosen by where the blobs live:

* ``PartialUploads`` (here; the embedded default): files in ``<data>/partial/``.
* ``s3resumable.S3PartialUploads`` (``PHOTOCHECK_BLOB_URL=s3://...``): objects in the
  bucket, so any worker on any machine continues an upload.

``PartialStore.writing(id)`` holds the upload against every other writer and gives a
``PartialWriter``: the durable offset, ``write``/``sync`` to append, ``assemble`` for
the complete file (a pending blob in the blob store's staging folder, hashed) and
``finish`` to keep the answer and drop the bytes. The tus routes use nothing else.

The local store: each upload is three files: ``<id>.json`` (what it is for, written
once, atomically), ``<id>.part`` (the bytes received so far) and, once checked,
``<id>.result.json`` (the answer, for a client that lost it). The offset is the size
of ``.part``: every write is fsynced before the offset is reported (at the end of
each PATCH, also one the client broke off), so a resumed upload continues from the
last byte durably stored and no acknowledged byte is ever lost. One writer per upload
at a time, across processes: an ``flock`` on ``.part``. A new request for an upload
whose previous connection broke waits for the old handler to notice and let go.
Expired uploads are removed by ``sweep``.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from .blobs import CHUNK, PendingBlob

__all__ = [
    "Appender",
    "PartialStore",
    "PartialUpload",
    "PartialUploads",
    "PartialWriter",
    "UploadBusy",
    "UploadGone",
    "check_id",
    "hash_into",
    "new_upload",
]

_ID = re.compile(r"^[0-9a-f]{32}$")
FSYNC_EVERY = 1024 * 1024  # bytes between fsyncs inside one long PATCH
WAIT_S = 15.0  # how long a request waits for another writer of the upload to let go


class UploadGone(Exception):
    """No such upload (never created, terminated, finished, or expired and removed)."""


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

    @property
    def expired(self) -> bool:
        return self.expires < dt.datetime.now(dt.UTC)


def new_upload(
    user_id: int, length: int, metadata: dict[str, str], extra: dict[str, Any], expiry: dt.timedelta
) -> PartialUpload:
    now = dt.datetime.now(dt.UTC)
    return PartialUpload(
        id=secrets.token_hex(16),
        user_id=user_id,
        length=length,
        metadata=metadata,
        created_at=now.isoformat(),
        expires_at=(now + expiry).isoformat(),
        extra=extra,
    )


def check_id(upload_id: str) -> str:
    """:exception UploadGone: not an ID this service makes (so never a path or a key)."""
    if not _ID.match(upload_id):
        raise UploadGone(upload_id)
    return upload_id


class PartialWriter(ABC):
    """An upload held against other writers. ``offset``: the bytes accepted so far (all
    durable after ``sync``); ``length``: the whole file's."""

    offset: int
    length: int
    polls_release = False  # True: ``release_requested`` sees waiters in other processes

    def _check_room(self, chunk: bytes) -> None:
        if self.offset + len(chunk) > self.length:
            msg = "more bytes than the upload's length"
            raise ValueError(msg)

    @abstractmethod
    def write(self, chunk: bytes) -> None:
        """Append. :exception ValueError: past the length (nothing of ``chunk`` kept)."""

    @abstractmethod
    def sync(self) -> None:
        """Make every accepted byte durable (before the offset is told to anyone)."""

    def release_requested(self) -> bool:
        """Another process waits for this upload (its link broke; let go)."""
        return False

    @abstractmethod
    def assemble(self, staging: Path) -> PendingBlob:
        """The complete file as a pending blob in ``staging``, its SHA-256 computed from
        the stored bytes. The partial bytes stay until ``finish``: after a crash in
        between, a retry finds the upload complete and gets the stored answer."""

    @abstractmethod
    def finish(self, body: dict[str, Any]) -> None:
        """Keep the answer (until expiry) for a client that lost it; drop the bytes."""


class PartialStore(ABC):
    """Where partial uploads live; see the module docstring."""

    expiry: dt.timedelta
    _swept = 0.0

    def sweep_now_and_then(self, every_s: float = 60.0) -> None:
        """``sweep``, at most once a minute (called as uploads are created)."""
        if time.monotonic() - self._swept >= every_s:
            self._swept = time.monotonic()
            self.sweep()

    @abstractmethod
    def create(
        self, user_id: int, length: int, metadata: dict[str, str], extra: dict[str, Any]
    ) -> PartialUpload: ...

    @abstractmethod
    def get(self, upload_id: str) -> PartialUpload:
        """The upload, unless unknown or expired (an expired one is removed here).

        :exception UploadGone:"""

    @abstractmethod
    def writing(
        self, upload_id: str, wait_s: float = WAIT_S
    ) -> AbstractContextManager[PartialWriter]:
        """The upload held for writing (waits up to ``wait_s`` for another writer).

        :exception UploadGone: no such upload, or finished (its ``result`` is kept).
        :exception UploadBusy: still held by another request after ``wait_s``."""

    @abstractmethod
    def result(self, upload_id: str) -> dict[str, Any] | None:
        """The answer of a finished upload (until it expires)."""

    @abstractmethod
    def delete(self, upload_id: str) -> None:
        """Forget the upload and its bytes."""

    @abstractmethod
    def sweep(self) -> int:
        """Remove expired uploads (and their bytes); returns how many."""

    def close(self) -> None:
        """Let go of connections (at shutdown)."""
        return None


def hash_into(path: Path, chunks: Iterator[bytes]) -> PendingBlob:
    """Write ``chunks`` to a new file ``path`` (fsynced), hashing: a pending blob."""
    digest, size = hashlib.sha256(), 0
    with path.open("xb") as fh:
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            fh.write(chunk)
        fh.flush()
        os.fsync(fh.fileno())
    return PendingBlob(path, digest.hexdigest(), size)


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


class Appender(PartialWriter):
    """Appends a PATCH body to ``.part``; fsyncs every ``FSYNC_EVERY`` bytes and at the end."""

    def __init__(
        self, store: PartialUploads, upload_id: str, fh: BinaryIO, offset: int, length: int
    ) -> None:
        self._store, self._id = store, upload_id
        self._fh, self.offset, self.length = fh, offset, length
        self._unsynced = 0

    def write(self, chunk: bytes) -> None:
        self._check_room(chunk)
        self._fh.write(chunk)
        self.offset += len(chunk)
        self._unsynced += len(chunk)
        if self._unsynced >= FSYNC_EVERY:
            self.sync()

    def sync(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._unsynced = 0

    def assemble(self, staging: Path) -> PendingBlob:
        """A hard link to ``.part`` (the blobs' staging folder is on the same disk): the
        intake moves the link into the store while ``.part`` stays until ``finish``."""
        self.sync()
        part = self._store.part_path(self._id)
        link = staging / f"tus-{self._id}"
        staging.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        try:
            os.link(part, link)
        except OSError:  # another filesystem: a copy
            shutil.copyfile(part, link)
        digest = hashlib.sha256()
        with link.open("rb") as fh:
            for block in iter(lambda: fh.read(CHUNK), b""):
                digest.update(block)
        return PendingBlob(link, digest.hexdigest(), link.stat().st_size)

    def finish(self, body: dict[str, Any]) -> None:
        self._store.save_result(self._id, body)
        self._store.part_path(self._id).unlink(missing_ok=True)  # stored (moved) or practice


class PartialUploads(PartialStore):
    """The local folder (the embedded default)."""

    def __init__(self, root: Path, expiry: dt.timedelta) -> None:
        self.root, self.expiry = Path(root), expiry
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, upload_id: str, suffix: str) -> Path:
        return self.root / f"{check_id(upload_id)}{suffix}"

    def create(
        self, user_id: int, length: int, metadata: dict[str, str], extra: dict[str, Any]
    ) -> PartialUpload:
        upload = new_upload(user_id, length, metadata, extra, self.expiry)
        self._path(upload.id, ".part").touch(exist_ok=False)
        _write_atomic(self._path(upload.id, ".json"), json.dumps(asdict(upload)).encode())
        return upload

    def get(self, upload_id: str) -> PartialUpload:
        try:
            raw = self._path(upload_id, ".json").read_bytes()
        except FileNotFoundError:
            raise UploadGone(upload_id) from None
        upload = PartialUpload(**json.loads(raw))
        if upload.expired:
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
    def locked(self, upload_id: str, wait_s: float = WAIT_S) -> Iterator[BinaryIO]:
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

    @contextmanager
    def writing(self, upload_id: str, wait_s: float = WAIT_S) -> Iterator[PartialWriter]:
        with self.locked(upload_id, wait_s) as fh:
            if self._path(upload_id, ".result.json").exists():  # finished meanwhile
                raise UploadGone(upload_id)
            upload = self.get(upload_id)
            yield Appender(self, upload_id, fh, self.offset(upload_id), upload.length)

    def result(self, upload_id: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._path(upload_id, ".result.json").read_bytes())
        except FileNotFoundError:
            return None

    def save_result(self, upload_id: str, body: dict[str, Any]) -> None:
        _write_atomic(self._path(upload_id, ".result.json"), json.dumps(body).encode())

    def delete(self, upload_id: str) -> None:
        for suffix in (".json", ".part", ".result.json", ".json.tmp", ".result.json.tmp"):
            self._path(upload_id, suffix).unlink(missing_ok=True)

    def sweep(self) -> int:
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
