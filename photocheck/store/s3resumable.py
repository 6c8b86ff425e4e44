"""Partial uploads in the S3 bucket (``PHOTOCHECK_BLOB_URL=s3://...``): any worker on
any machine continues an upload, so a load balancer needs no sticky sessions.

Layout, under ``PREFIX/partial/<id>/``:

* ``info.json``   what the upload is for, its owner and expiry, and its S3 multipart
  upload ID (written once, ``If-None-Match: *``); read by every worker.
* multipart upload on ``data``  parts 1..k, each at least ``PART_MIN`` (S3's 5 MiB
  minimum for every part but the last), covering bytes ``[0, P)``.
* ``c<start>``    the tail after the parts: each PATCH's bytes as their own object,
  written (``If-None-Match: *``) before the PATCH reports its offset.
* ``result.json`` the answer, for a client that lost it.

Why tails as objects: tus clients send 1–5 MB chunks (the test sends 256 kB), below
S3's part minimum, and every byte the offset acknowledges must already be durable in
S3, not in one machine's memory. So the bytes of a PATCH are stored as a small object
of their own; once the tail reaches ``PART_MIN`` it is *folded* into the next part
(its objects read back, sent as one ``UploadPart``, then deleted). A tail object is
never rewritten (no read-modify-write of a growing object per PATCH), and a photo
under 5 MiB never needs a part at all. The offset is read from S3 on every request:
``P`` (``ListParts``) plus the tail objects that follow it contiguously; a tail
object that starts below ``P`` was folded already (a fold that died before deleting
it) and is removed. A PATCH buffers at most ``PART_MIN`` in memory: a worker that dies
mid-PATCH loses only bytes it never acknowledged.

Completion: with parts, the tail becomes the last part and the multipart upload is
completed into ``data`` (so bytes are read back once, whole); without parts the tail
objects are read in order. Either way the file is streamed into the blob store's
staging folder and hashed there, checked against the announced SHA-256, and then
stored by the blob store like any upload (``ChecksumSHA256``, never overwritten).
The partial objects stay until the answer is saved, so a retry after a crash gets
the answer, not a second check. Expired uploads: ``sweep`` aborts the multipart
upload and deletes the objects; multipart uploads without a record are aborted after
an hour. One writer at a time: ``upload_locks`` (PostgreSQL advisory lock).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BlobNotFound
from .blobs import PendingBlob
from .resumable import (
    WAIT_S,
    PartialStore,
    PartialUpload,
    PartialWriter,
    UploadBusy,
    UploadGone,
    check_id,
    hash_into,
    new_upload,
)
from .s3blobs import S3BlobStore, _Exists
from .upload_locks import HeldLock, UploadLocks

__all__ = ["PART_MIN", "S3PartialUploads"]

PART_MIN = 5 * 1024 * 1024  # S3's minimum size of every part but the last
STRAY_S = 3600.0  # objects and multipart uploads with no record, left this long: removed
_CACHE = 10_000  # upload records kept in memory (they never change once written)


@dataclass
class _Layout:
    """What S3 holds of an upload: parts (number, size, ETag), then the tail objects
    (start, size) contiguous after them; ``assembled``: completed into ``data``."""

    parts: list[tuple[int, int, str]] = field(default_factory=list)
    tail: list[tuple[int, int]] = field(default_factory=list)
    assembled: bool = False

    @property
    def parts_end(self) -> int:
        return sum(size for _, size, _ in self.parts)

    @property
    def tail_size(self) -> int:
        return sum(size for _, size in self.tail)


class S3PartialUploads(PartialStore):
    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str,
        locks: UploadLocks,
        expiry: dt.timedelta,
        staging: Path,
    ) -> None:
        self._s3 = S3BlobStore(client, bucket, prefix, staging)  # its calls and errors
        self.client, self.locks, self.expiry = client, locks, expiry
        self._records: dict[str, PartialUpload] = {}

    def describe(self) -> str:
        return self._s3.describe()

    def close(self) -> None:
        self.locks.close()

    def key(self, upload_id: str, name: str = "") -> str:
        return self._s3._key(f"{check_id(upload_id)}/{name}")

    def _call(self, what: str, fn: Any, **kw: Any) -> Any:
        return self._s3._call(what, fn, **kw)

    def _put(self, key: str, body: bytes, *, new: bool = True) -> None:
        kw = {"IfNoneMatch": "*"} if new else {}
        self._call("put", self.client.put_object, Key=key, Body=body, **kw)

    def _get(self, key: str) -> bytes:
        return S3BlobStore._body(self._call("get", self.client.get_object, Key=key), "get")

    def _stream(self, key: str) -> Iterator[bytes]:
        obj = self._call("get", self.client.get_object, Key=key)
        return S3BlobStore._chunks(obj, key)

    def _objects(self, prefix: str) -> dict[str, tuple[int, float]]:
        """Keys under ``prefix`` (relative to it) -> (size, modified epoch seconds)."""
        out: dict[str, tuple[int, float]] = {}
        kw: dict[str, Any] = {"Prefix": prefix}
        while True:
            page = self._call("list", self.client.list_objects_v2, **kw)
            for obj in page.get("Contents", ()):
                modified = obj["LastModified"].timestamp()
                out[obj["Key"][len(prefix) :]] = (int(obj["Size"]), modified)
            if not page.get("IsTruncated"):
                return out
            kw["ContinuationToken"] = page["NextContinuationToken"]

    def _delete_keys(self, keys: list[str]) -> None:
        for i in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[i : i + 1000]]
            self._call(
                "delete", self.client.delete_objects, Delete={"Objects": batch, "Quiet": True}
            )

    def _abort(self, upload_id: str, multipart: str) -> None:
        with contextlib.suppress(BlobNotFound):  # completed or aborted already
            self._call(
                "abort",
                self.client.abort_multipart_upload,
                Key=self.key(upload_id, "data"),
                UploadId=multipart,
            )

    # -- records

    def create(
        self, user_id: int, length: int, metadata: dict[str, str], extra: dict[str, Any]
    ) -> PartialUpload:
        upload = new_upload(user_id, length, metadata, extra, self.expiry)
        if length >= PART_MIN:  # a smaller file never makes a part: its tail is all of it
            mpu = self._call(
                "create multipart",
                self.client.create_multipart_upload,
                Key=self.key(upload.id, "data"),
            )
            upload.extra = {**extra, "multipart": mpu["UploadId"]}
        self._put(self.key(upload.id, "info.json"), json.dumps(asdict(upload)).encode())
        self._remember(upload)
        return upload

    def _remember(self, upload: PartialUpload) -> None:
        if len(self._records) >= _CACHE:
            self._records.pop(next(iter(self._records)))
        self._records[upload.id] = upload

    def _record(self, upload_id: str) -> PartialUpload:
        upload = self._records.get(check_id(upload_id))
        if upload is None:
            try:
                raw = self._get(self.key(upload_id, "info.json"))
            except BlobNotFound:
                raise UploadGone(upload_id) from None
            upload = PartialUpload(**json.loads(raw))
            self._remember(upload)
        return upload

    def get(self, upload_id: str) -> PartialUpload:
        upload = self._record(upload_id)
        if upload.expired:
            self.delete(upload_id)
            raise UploadGone(upload_id)
        return upload

    def result(self, upload_id: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._get(self.key(upload_id, "result.json")))
        except BlobNotFound:
            return None

    # -- bytes

    def _layout(self, upload: PartialUpload) -> _Layout:
        """Read from S3 (under the lock); removes tail objects folded already."""
        objects = self._objects(self.key(upload.id))
        if "info.json" not in objects or "result.json" in objects:
            raise UploadGone(upload.id)  # terminated, expired, or finished
        layout = _Layout()
        try:
            layout.parts = self._parts(upload) if "multipart" in upload.extra else []
        except BlobNotFound:  # the multipart upload was completed (or aborted)
            if "data" not in objects:
                raise UploadGone(upload.id) from None
            layout.assembled = True
        pos, stale = layout.parts_end, []
        for name, (size, _) in sorted(objects.items()):
            if not (name.startswith("c") and name[1:].isdigit()):
                continue
            start = int(name[1:])
            if start == pos and not layout.assembled:
                layout.tail.append((start, size))
                pos += size
            else:
                stale.append(self.key(upload.id, name))
        if stale:
            self._delete_keys(stale)
        return layout

    def _parts(self, upload: PartialUpload) -> list[tuple[int, int, str]]:
        parts: dict[int, tuple[int, int, str]] = {}
        kw: dict[str, Any] = {
            "Key": self.key(upload.id, "data"),
            "UploadId": upload.extra["multipart"],
        }
        while True:
            page = self._call("list parts", self.client.list_parts, **kw)
            for p in page.get("Parts", ()):
                parts[int(p["PartNumber"])] = (int(p["PartNumber"]), int(p["Size"]), p["ETag"])
            if not page.get("IsTruncated"):
                return [parts[n] for n in sorted(parts)]
            kw["PartNumberMarker"] = page["NextPartNumberMarker"]

    @contextmanager
    def writing(self, upload_id: str, wait_s: float = WAIT_S) -> Iterator[PartialWriter]:
        upload = self.get(upload_id)
        with self.locks.hold(upload_id, wait_s) as held:
            yield _S3Writer(self, upload, self._layout(upload), held, self.locks.cross_process)

    def delete(self, upload_id: str) -> None:
        """Abort the multipart upload, delete the objects (the record last, so a delete
        that dies half-way is finished by the next sweep)."""
        try:
            upload: PartialUpload | None = self._record(upload_id)
        except (UploadGone, ValueError, TypeError):
            upload = None
        if upload is not None and "multipart" in upload.extra:
            self._abort(upload_id, upload.extra["multipart"])
        keys = [self.key(upload_id, name) for name in self._objects(self.key(upload_id))]
        info = self.key(upload_id, "info.json")
        self._delete_keys([k for k in keys if k != info])
        self._delete_keys([k for k in keys if k == info])
        self._records.pop(upload_id, None)

    def sweep(self) -> int:
        root = self._s3._key("")
        by_id: dict[str, dict[str, float]] = {}
        for name, (_, modified) in self._objects(root).items():
            upload_id, _, rest = name.partition("/")
            by_id.setdefault(upload_id, {})[rest] = modified
        removed, old = 0, time.time() - STRAY_S
        for upload_id, objects in by_id.items():
            try:
                check_id(upload_id)
            except UploadGone:
                continue
            if "info.json" not in objects:
                if max(objects.values()) < old:  # a delete that died half-way
                    self._delete_keys([self.key(upload_id, n) for n in objects])
                continue
            try:
                expired = self._record(upload_id).expired
            except UploadGone:
                continue
            except (ValueError, TypeError):  # an unreadable record is no upload
                expired = True
            if expired:
                self.delete(upload_id)
                removed += 1
        kw: dict[str, Any] = {"Prefix": root}
        while True:  # multipart uploads whose record was never written (or is gone)
            page = self._call("list multipart", self.client.list_multipart_uploads, **kw)
            for mpu in page.get("Uploads", ()):
                upload_id = mpu["Key"][len(root) :].partition("/")[0]
                if "info.json" not in by_id.get(upload_id, {}) and (
                    mpu["Initiated"].timestamp() < old
                ):
                    with contextlib.suppress(BlobNotFound):
                        self._call(
                            "abort",
                            self.client.abort_multipart_upload,
                            Key=mpu["Key"],
                            UploadId=mpu["UploadId"],
                        )
            if not page.get("IsTruncated"):
                break
            kw.update(KeyMarker=page["NextKeyMarker"], UploadIdMarker=page["NextUploadIdMarker"])
        self.locks.sweep()
        return removed


class _S3Writer(PartialWriter):
    """Appends to an upload in S3 (see the module docstring for the layout)."""

    def __init__(
        self,
        store: S3PartialUploads,
        upload: PartialUpload,
        layout: _Layout,
        held: HeldLock,
        polls_release: bool,
    ) -> None:
        self._store, self._upload, self._layout, self._held = store, upload, layout, held
        self.polls_release = polls_release
        self.length = upload.length
        self.offset = upload.length if layout.assembled else layout.parts_end + layout.tail_size
        self._buffer = bytearray()

    @property
    def _multipart(self) -> dict[str, Any]:
        return {
            "Key": self._store.key(self._upload.id, "data"),
            "UploadId": self._upload.extra["multipart"],
        }

    def write(self, chunk: bytes) -> None:
        self._check_room(chunk)
        self._buffer += chunk
        self.offset += len(chunk)
        if self._layout.tail_size + len(self._buffer) >= PART_MIN:
            self._fold()

    def _tail_bytes(self) -> bytes:
        key = self._store.key
        return b"".join(
            self._store._get(key(self._upload.id, f"c{s:012d}")) for s, _ in self._layout.tail
        )

    def _upload_part(self, data: bytes) -> None:
        number = self._layout.parts[-1][0] + 1 if self._layout.parts else 1
        answer = self._store._call(
            "upload part",
            self._store.client.upload_part,
            PartNumber=number,
            Body=data,
            **self._multipart,
        )
        tail_keys = [self._store.key(self._upload.id, f"c{s:012d}") for s, _ in self._layout.tail]
        self._layout.parts.append((number, len(data), answer["ETag"]))
        self._layout.tail = []
        self._store._delete_keys(tail_keys)  # left behind by a crash: removed as stale

    def _fold(self) -> None:
        """The tail and the buffer become the next part (at least ``PART_MIN``)."""
        self._upload_part(self._tail_bytes() + bytes(self._buffer))
        self._buffer.clear()

    def sync(self) -> None:
        if not self._buffer:
            return
        start = self.offset - len(self._buffer)
        try:
            self._store._put(
                self._store.key(self._upload.id, f"c{start:012d}"), bytes(self._buffer)
            )
        except _Exists:  # another writer stored bytes at this offset: ours are not kept
            self.offset = start
            self._buffer.clear()
            raise UploadBusy(self._upload.id) from None
        self._layout.tail.append((start, len(self._buffer)))
        self._buffer.clear()

    def release_requested(self) -> bool:
        return self._held.contended()

    def assemble(self, staging: Path) -> PendingBlob:
        self.sync()
        staging.mkdir(parents=True, exist_ok=True)
        path = staging / f"tus-{self._upload.id}"
        path.unlink(missing_ok=True)
        if self._layout.parts and not self._layout.assembled:
            if self._layout.tail:
                self._upload_part(self._tail_bytes())  # the last part: any size
            parts = [{"PartNumber": n, "ETag": etag} for n, _, etag in self._layout.parts]
            self._store._call(
                "complete multipart",
                self._store.client.complete_multipart_upload,
                MultipartUpload={"Parts": parts},
                **self._multipart,
            )
            self._layout.assembled = True
        if self._layout.assembled:
            chunks = self._store._stream(self._store.key(self._upload.id, "data"))
        else:
            chunks = self._tail_chunks()
        try:
            return hash_into(path, chunks)
        except BaseException:
            path.unlink(missing_ok=True)
            raise

    def _tail_chunks(self) -> Iterator[bytes]:
        for start, _ in self._layout.tail:
            yield from self._store._stream(self._store.key(self._upload.id, f"c{start:012d}"))

    def finish(self, body: dict[str, Any]) -> None:
        upload_id = self._upload.id
        self._store._put(
            self._store.key(upload_id, "result.json"), json.dumps(body).encode(), new=False
        )
        if "multipart" in self._upload.extra and not self._layout.assembled:
            self._store._abort(upload_id, self._upload.extra["multipart"])  # parts unused
        keep = {"info.json", "result.json"}
        objects = self._store._objects(self._store.key(upload_id))
        self._store._delete_keys([self._store.key(upload_id, n) for n in objects if n not in keep])
