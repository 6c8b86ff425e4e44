"""Blob stores: original photos, site photos and previews, on a local folder or on S3.

One interface (``BlobStore``), two implementations chosen by configuration only
(``BlobConfig``): ``LocalBlobStore`` (the embedded default, ``DATA_DIR/blobs`` etc.)
and ``S3BlobStore`` (``s3://BUCKET/PREFIX``, in ``store.s3blobs``).

Originals are content-addressed: ``ab/cd/<sha256>`` (what the database keeps, the same
on both stores). An upload is streamed into a local staging folder while its SHA-256
is computed; ``commit`` then makes it durable under its address, checks the SHA-256 of
what was written, and never replaces a stored blob (the same bytes map to the same
name, so an existing blob is already right). Callers commit before the database row
that points at the blob, so a crash leaves at most an orphan blob, never a row without
its bytes; ``store.reconcile`` deals with the leftovers.

Derived files (previews) are "named" blobs: written once, read back, made again from
the original if they are ever missing.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from ..errors import BlobIntegrityError, BlobNotFound, BlobStoreUnavailable

__all__ = [
    "NAMESPACES",
    "BlobConfig",
    "BlobStore",
    "BlobWriter",
    "LocalBlobStore",
    "PendingBlob",
    "SizeLimitExceeded",
    "StoredBlob",
    "blob_relpath",
]

_SHA = re.compile(r"^[0-9a-f]{64}$")
_RELPATH = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
CHUNK = 1 << 20  # 1 MiB: reads and hashing at copy speed, little memory

# Each kind of blob and its folder in the data folder (the S3 key prefix is the same).
NAMESPACES = {"blobs": "blobs", "drone": "drone", "previews": "audit_previews"}


class SizeLimitExceeded(Exception):
    """More bytes arrived than the limit allows."""


def blob_relpath(sha256: str) -> str:
    """The content address of a blob (what the database keeps): ``ab/cd/<sha256>``."""
    if not _SHA.match(sha256):
        msg = f"not a SHA-256 hex digest: {sha256!r}"
        raise ValueError(msg)
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


def _check_relpath(relpath: str) -> str:
    if not _RELPATH.match(relpath):
        msg = f"not a blob address: {relpath!r}"
        raise ValueError(msg)
    return relpath


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        msg = f"not a valid blob name: {name!r}"
        raise ValueError(msg)
    return name


@dataclass
class PendingBlob:
    """A streamed upload in a store's local staging folder: not yet part of any store.

    ``written``: the digest of the bytes as ``BlobWriter`` wrote them, and the staging
    file's identity then (device, inode, size, mtime ns). While both still hold, the
    file is what was hashed, and a commit needs no read-back to check it."""

    path: Path
    sha256: str
    size: int
    written: tuple[str, tuple[int, int, int, int]] | None = None

    def unchanged_since_written(self, st: os.stat_result) -> bool:
        """Hashed as written with this ``sha256`` and ``size``, and the file (``st``, its
        stat now) not written since."""
        if self.written is None:
            return False
        digest, identity = self.written
        return digest == self.sha256 and identity[2] == self.size and _identity(st) == identity

    def read(self) -> bytes:
        return self.path.read_bytes()

    def head(self, n: int = 32) -> bytes:
        with self.path.open("rb") as fh:
            return fh.read(n)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class StoredBlob:
    """A committed blob as a listing sees it."""

    sha256: str
    modified: float  # seconds since the epoch


class BlobWriter:
    """Streams chunks to a staging file, hashing and counting; refuses past ``limit``."""

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
        self._fh.flush()
        identity = _identity(os.fstat(self._fh.fileno()))
        self._fh.close()
        digest = self._hash.hexdigest()
        return PendingBlob(self.path, digest, self.size, written=(digest, identity))

    def abort(self) -> None:
        self._fh.close()
        self.path.unlink(missing_ok=True)


class BlobStore(ABC):
    """What every blob store does. ``tmp`` is the local staging folder of uploads."""

    tmp: Path

    def relpath(self, sha256: str) -> str:
        return blob_relpath(sha256)

    def open_writer(self, limit: int) -> BlobWriter:
        self.tmp.mkdir(parents=True, exist_ok=True)
        path = self.tmp / f"upload-{uuid.uuid4().hex}"
        return BlobWriter(path.open("xb"), path, limit)

    def put_bytes(self, data: bytes) -> str:
        """Store bytes durably (for callers that already hold them); returns the relpath."""
        writer = self.open_writer(len(data))
        try:
            writer.write(data)
        except BaseException:
            writer.abort()
            raise
        pending = writer.finish()
        try:
            return self.commit(pending)
        finally:
            pending.discard()

    def clean_staging(self, older_than_s: float = 0.0) -> int:
        """Delete staging files of unfinished uploads older than ``older_than_s``; how many.

        Several processes may share the folder: a grace keeps their running uploads."""
        if not self.tmp.is_dir():
            return 0
        removed, now = 0, time.time()
        for path in self.tmp.iterdir():
            try:
                if path.is_file() and now - path.stat().st_mtime >= older_than_s:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:  # another process cleaned it
                continue
        return removed

    def prepare(self) -> None:
        """Ready the store before serving (S3: create a missing bucket).

        :exception BlobStoreUnavailable: the store cannot be reached now."""
        return None  # a local folder needs nothing

    @abstractmethod
    def commit(self, pending: PendingBlob) -> str:
        """Make a pending blob durable under its content address; returns its relpath.

        The stored bytes are checked against ``pending.sha256``; a blob already stored
        under that address is kept as it is. The staging file is removed once stored;
        on an error it stays for the caller to discard (or retry).

        :exception BlobIntegrityError: the bytes do not match the SHA-256 (nothing stored).
        :exception BlobStoreUnavailable: the store cannot be written now.
        """

    @abstractmethod
    def exists(self, sha256: str) -> bool: ...

    @abstractmethod
    def size(self, relpath: str) -> int:
        """:exception BlobNotFound:"""

    @abstractmethod
    def read(self, relpath: str) -> bytes:
        """All of a blob. :exception BlobNotFound: :exception BlobStoreUnavailable:"""

    @abstractmethod
    def iter_range(self, relpath: str, start: int, end: int) -> Iterator[bytes]:
        """Bytes ``start`` up to ``end`` (exclusive), in chunks, streamed from the store."""

    @abstractmethod
    def iter_blobs(self) -> Iterator[StoredBlob]:
        """Every committed blob (staging files excluded)."""

    @abstractmethod
    def quarantine(self, sha256: str) -> str:
        """Move a blob out of the store, kept for an operator; returns where it went."""

    @abstractmethod
    def get_named(self, name: str) -> bytes | None:
        """A derived file (a preview), or None when it has not been made yet."""

    @abstractmethod
    def put_named(self, name: str, data: bytes) -> None:
        """Store a derived file; one that exists already is left as it is."""

    @abstractmethod
    def describe(self) -> str:
        """Where the blobs are, for logs and ``/health``."""


class LocalBlobStore(BlobStore):
    """A folder: ``root/ab/cd/<sha256>``; staging in ``root/tmp`` (same filesystem, so
    the final step is a hard link, atomic and never replacing an existing file)."""

    def __init__(self, root: Path, *, orphan_dir: Path | None = None) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.orphan_dir = orphan_dir if orphan_dir is not None else self.root.parent / "orphans"

    def path(self, sha256: str) -> Path:
        return self.root / self.relpath(sha256)

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def commit(self, pending: PendingBlob) -> str:
        rel = self.relpath(pending.sha256)
        final = self.root / rel
        if final.is_file():
            pending.discard()
            return rel
        try:
            _fsync_and_verify(pending)
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(pending.path, final)  # fails if it exists: never overwrites
            except FileExistsError:
                pending.discard()
                return rel  # the same bytes, committed meanwhile by another upload
            _fsync_dir(final.parent)
        except BlobIntegrityError:
            raise
        except OSError as exc:  # disk full, read-only, I/O error
            msg = f"cannot write the blob store {self.root}: {exc}"
            raise BlobStoreUnavailable(msg) from exc
        pending.discard()
        return rel

    def _file(self, relpath: str) -> Path:
        path = self.root / _check_relpath(relpath)
        if not path.is_file():
            raise BlobNotFound(relpath)
        return path

    def size(self, relpath: str) -> int:
        return self._file(relpath).stat().st_size

    def read(self, relpath: str) -> bytes:
        try:
            return self._file(relpath).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(relpath) from None

    def iter_range(self, relpath: str, start: int, end: int) -> Iterator[bytes]:
        fh = self._file(relpath).open("rb")  # a missing blob fails here, before any byte
        return _file_chunks(fh, relpath, start, end)

    def iter_blobs(self) -> Iterator[StoredBlob]:
        for path in self.root.glob("??/??/*"):
            if _SHA.match(path.name):
                try:
                    yield StoredBlob(path.name, path.stat().st_mtime)
                except FileNotFoundError:
                    continue

    def quarantine(self, sha256: str) -> str:
        self.orphan_dir.mkdir(parents=True, exist_ok=True)
        target = self.orphan_dir / sha256
        self.path(sha256).replace(target)
        return str(target)

    def get_named(self, name: str) -> bytes | None:
        try:
            return (self.root / _check_name(name)).read_bytes()
        except FileNotFoundError:
            return None

    def put_named(self, name: str, data: bytes) -> None:
        path = self.root / _check_name(name)
        tmp = self.tmp / f"{name}.{uuid.uuid4().hex}"
        self.tmp.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        try:
            os.link(tmp, path)  # a concurrent request sees all of it or nothing
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)

    def describe(self) -> str:
        return str(self.root)


def _file_chunks(fh: BinaryIO, relpath: str, start: int, end: int) -> Iterator[bytes]:
    with fh:
        fh.seek(start)
        remaining = end - start
        while remaining > 0:
            chunk = fh.read(min(CHUNK, remaining))
            if not chunk:
                msg = f"blob {relpath} is shorter than {end} bytes"
                raise BlobNotFound(msg)
            remaining -= len(chunk)
            yield chunk


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _fsync_and_verify(pending: PendingBlob) -> None:
    """fsync the staging file and check its SHA-256: the check on write. A file that
    ``BlobWriter`` hashed as it wrote it, untouched since, is checked by that digest;
    any other is read back and hashed (reading back what was just written comes from
    the page cache, so it finds a file changed meanwhile, never a bad disk block)."""
    with pending.path.open("rb") as fh:
        os.fsync(fh.fileno())
        if pending.unchanged_since_written(os.fstat(fh.fileno())):
            return
        digest = hashlib.sha256()
        size = 0
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    if digest.hexdigest() != pending.sha256 or size != pending.size:
        msg = f"the staged bytes do not match SHA-256 {pending.sha256}: not stored"
        raise BlobIntegrityError(msg)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class BlobConfig:
    """Where blobs live: ``url`` None is the local data folder, ``s3://BUCKET/PREFIX``
    an S3 bucket (endpoint and keys here, or boto3's own ``AWS_*`` settings)."""

    data_dir: Path
    url: str | None = None
    s3_endpoint: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_region: str | None = None

    def __post_init__(self) -> None:
        if self.url is not None:
            self.bucket_and_prefix()  # fail at start, not at the first upload

    @property
    def is_s3(self) -> bool:
        return self.url is not None

    def bucket_and_prefix(self) -> tuple[str, str]:
        """``s3://bucket/some/prefix`` -> ("bucket", "some/prefix").

        :exception ValueError: not an ``s3://`` URL with a bucket.
        """
        parts = urlsplit(self.url or "")
        if parts.scheme != "s3" or not parts.netloc:
            msg = f"PHOTOCHECK_BLOB_URL must look like s3://BUCKET/PREFIX, not {self.url!r}"
            raise ValueError(msg)
        return parts.netloc, parts.path.strip("/")

    def stores(self) -> dict[str, BlobStore]:
        """One store per namespace (``NAMESPACES``); S3 stores share one client."""
        if not self.is_s3:
            return {
                ns: LocalBlobStore(self.data_dir / folder, orphan_dir=self._orphans(ns))
                for ns, folder in NAMESPACES.items()
            }
        from .s3blobs import S3BlobStore, make_client

        bucket, prefix = self.bucket_and_prefix()
        client = make_client(self)
        staging = self.data_dir / "staging"
        return {
            ns: S3BlobStore(client, bucket, "/".join(p for p in (prefix, folder) if p), staging)
            for ns, folder in NAMESPACES.items()
        }

    def store(self, namespace: str) -> BlobStore:
        return self.stores()[namespace]

    def _orphans(self, namespace: str) -> Path:
        base = self.data_dir / "orphans"
        return base if namespace == "blobs" else base / namespace
