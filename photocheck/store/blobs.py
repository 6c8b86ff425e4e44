"""Content-addressed storage of original photo bytes: ``blobs/ab/cd/<sha256>``.

An upload is streamed into ``blobs/tmp/`` while its SHA-256 is computed; when it is to
be kept it is fsynced and renamed (atomic on one filesystem) to its final path, and the
directory is fsynced, before any database row points at it. A blob is never
overwritten: the same bytes map to the same name. Leftovers of a crash are handled by
``store.reconcile``.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["BlobStore", "PendingBlob", "SizeLimitExceeded"]

_SHA = re.compile(r"^[0-9a-f]{64}$")


class SizeLimitExceeded(Exception):
    """More bytes arrived than the limit allows."""


@dataclass
class PendingBlob:
    """A streamed upload in ``blobs/tmp``: not yet part of the store."""

    path: Path
    sha256: str
    size: int

    def read(self) -> bytes:
        return self.path.read_bytes()

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


class BlobWriter:
    """Streams chunks to a temp file, hashing and counting; refuses past ``limit``."""

    def __init__(self, fh: BinaryIO, path: Path, limit: int) -> None:
        self._fh, self.path, self.limit = fh, path, limit
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            msg = f"more than {self.limit} bytes"
            raise SizeLimitExceeded(msg)
        self._hash.update(chunk)
        self._fh.write(chunk)

    def finish(self) -> PendingBlob:
        self._fh.close()
        return PendingBlob(self.path, self._hash.hexdigest(), self.size)

    def abort(self) -> None:
        self._fh.close()
        self.path.unlink(missing_ok=True)


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    def relpath(self, sha256: str) -> str:
        """The path of a blob relative to the store root (what the database keeps)."""
        if not _SHA.match(sha256):
            msg = f"not a SHA-256 hex digest: {sha256!r}"
            raise ValueError(msg)
        return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def path(self, sha256: str) -> Path:
        return self.root / self.relpath(sha256)

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def open_writer(self, limit: int) -> BlobWriter:
        path = self.tmp / f"upload-{uuid.uuid4().hex}"
        return BlobWriter(path.open("xb"), path, limit)

    def put_bytes(self, data: bytes) -> str:
        """Store bytes durably (for callers that already hold them); returns the SHA-256."""
        writer = self.open_writer(len(data))
        try:
            writer.write(data)
        except BaseException:
            writer.abort()
            raise
        return self.commit(writer.finish())

    def commit(self, pending: PendingBlob) -> str:
        """Make a pending blob durable under its content address; returns its relpath.

        If the same content is already stored, the pending copy is dropped: the stored
        file is never touched.
        """
        final = self.path(pending.sha256)
        if final.is_file():
            pending.discard()
            return self.relpath(pending.sha256)
        with pending.path.open("rb+") as fh:
            os.fsync(fh.fileno())
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(pending.path, final)
        _fsync_dir(final.parent)
        return self.relpath(pending.sha256)

    def iter_blobs(self) -> list[tuple[str, Path]]:
        """Every stored blob as (sha256, path); temp files excluded."""
        out = []
        for path in self.root.glob("??/??/*"):
            if path.is_file() and _SHA.match(path.name):
                out.append((path.name, path))
        return out


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
