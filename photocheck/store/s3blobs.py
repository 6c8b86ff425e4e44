"""The S3 blob store (boto3): ``s3://BUCKET/PREFIX`` on AWS, SeaweedFS, MinIO, Ceph...

Writes send ``ChecksumSHA256`` (the server refuses bytes that do not match it) and
``If-None-Match: *`` (the server refuses to replace an object; a 412 means the same
content is already there, which is success for a content-addressed key). Reads stream,
by range when asked. Every failure to reach the store becomes ``BlobStoreUnavailable``
(the API answers 503): short timeouts and few retries, so an upload fails in seconds,
not minutes, and the same client works again as soon as the store is back (botocore
opens new connections; nothing is cached in a broken state).
"""

from __future__ import annotations

import base64
import contextlib
import logging
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3  # type: ignore[import-untyped]
from botocore import UNSIGNED  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from ..errors import BlobIntegrityError, BlobNotFound, BlobStoreUnavailable
from .blobs import CHUNK, BlobStore, PendingBlob, StoredBlob, _check_name, _check_relpath

if TYPE_CHECKING:
    from .blobs import BlobConfig

__all__ = ["S3BlobStore", "make_client"]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 10.0
MAX_ATTEMPTS = 2  # the first try and one retry (botocore's "standard" mode backs off)
MAX_POOL = 32  # the server's thread pool runs this many requests at once at most

_INTEGRITY = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidChecksum"}
_MISSING = {"NoSuchKey", "404", "NotFound"}


def make_client(config: BlobConfig) -> Any:
    """A thread-safe S3 client for the config: explicit keys, else boto3's own chain
    (``AWS_ACCESS_KEY_ID``...), else unsigned requests (a store without auth)."""
    session = boto3.session.Session(
        aws_access_key_id=config.s3_access_key,
        aws_secret_access_key=config.s3_secret_key,
        region_name=config.s3_region,
    )
    signature: Any = None if session.get_credentials() is not None else UNSIGNED
    botocfg = Config(
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
        max_pool_connections=MAX_POOL,
        s3={"addressing_style": "path"},  # SeaweedFS and MinIO need path-style URLs
        signature_version=signature,
        request_checksum_calculation="when_required",  # we send our own SHA-256
        response_checksum_validation="when_required",
    )
    return session.client(
        "s3",
        endpoint_url=config.s3_endpoint,  # None: AWS_ENDPOINT_URL or AWS itself
        region_name=config.s3_region or session.region_name or "us-east-1",
        config=botocfg,
    )


class S3BlobStore(BlobStore):
    """Objects ``PREFIX/ab/cd/<sha256>`` in one bucket; uploads staged in ``staging``."""

    def __init__(self, client: Any, bucket: str, prefix: str, staging: Path) -> None:
        self.client, self.bucket = client, bucket
        self.prefix = prefix.strip("/")
        self.tmp = Path(staging)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def _key(self, tail: str) -> str:
        return f"{self.prefix}/{tail}" if self.prefix else tail

    def _call(self, what: str, fn: Any, **kw: Any) -> Any:
        try:
            return fn(Bucket=self.bucket, **kw)
        except ClientError as exc:
            raise _translate(exc, what) from exc
        except BotoCoreError as exc:  # refused, timed out, connection closed
            msg = f"the object store cannot be reached ({what}): {exc}"
            raise BlobStoreUnavailable(msg) from exc

    def prepare(self) -> None:
        """Create the bucket when it does not exist yet (SeaweedFS, MinIO: no set-up)."""
        try:
            self._call("head bucket", self.client.head_bucket)
        except BlobNotFound:
            log.warning("creating bucket %s", self.bucket)
            try:
                self._call("create bucket", self.client.create_bucket)
            except BlobStoreUnavailable as exc:
                if "BucketAlreadyOwnedByYou" not in str(exc):
                    raise

    def commit(self, pending: PendingBlob) -> str:
        rel = self.relpath(pending.sha256)
        checksum = base64.b64encode(bytes.fromhex(pending.sha256)).decode("ascii")
        try:
            with pending.path.open("rb") as body:
                self._call(
                    "put",
                    self.client.put_object,
                    Key=self._key(rel),
                    Body=body,
                    ContentLength=pending.size,
                    ChecksumSHA256=checksum,
                    IfNoneMatch="*",
                )
        except _Exists:
            pass  # the same content is already stored: it is never replaced
        except OSError as exc:
            if isinstance(exc, BlobStoreUnavailable):
                raise
            msg = f"cannot read the staged upload {pending.path}: {exc}"
            raise BlobStoreUnavailable(msg) from exc
        pending.discard()
        return rel

    def exists(self, sha256: str) -> bool:
        try:
            self._call("head", self.client.head_object, Key=self._key(self.relpath(sha256)))
        except BlobNotFound:
            return False
        return True

    def size(self, relpath: str) -> int:
        head = self._call("head", self.client.head_object, Key=self._key(_check_relpath(relpath)))
        return int(head["ContentLength"])

    def read(self, relpath: str) -> bytes:
        obj = self._call("get", self.client.get_object, Key=self._key(_check_relpath(relpath)))
        return self._body(obj, "get")

    def iter_range(self, relpath: str, start: int, end: int) -> Iterator[bytes]:
        """The request is made here (a store that is down fails before any byte is
        sent); the chunks are streamed as the caller iterates."""
        if end <= start:
            return iter(())
        obj = self._call(
            "get range",
            self.client.get_object,
            Key=self._key(_check_relpath(relpath)),
            Range=f"bytes={start}-{end - 1}",
        )
        return self._chunks(obj, relpath)

    @staticmethod
    def _chunks(obj: dict[str, Any], relpath: str) -> Iterator[bytes]:
        try:
            yield from obj["Body"].iter_chunks(CHUNK)
        except (BotoCoreError, OSError) as exc:
            msg = f"the object store stopped sending {relpath}: {exc}"
            raise BlobStoreUnavailable(msg) from exc
        finally:
            obj["Body"].close()

    def iter_blobs(self) -> Iterator[StoredBlob]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key("")
        )
        try:
            for page in pages:
                for obj in page.get("Contents", ()):
                    tail = obj["Key"][len(self._key("")) :]
                    try:
                        _check_relpath(tail)
                    except ValueError:
                        continue
                    modified = obj["LastModified"].astimezone(UTC).timestamp()
                    yield StoredBlob(tail.rsplit("/", 1)[1], modified)
        except ClientError as exc:
            raise _translate(exc, "list") from exc
        except BotoCoreError as exc:
            msg = f"the object store cannot be reached (list): {exc}"
            raise BlobStoreUnavailable(msg) from exc

    def quarantine(self, sha256: str) -> str:
        """Copy to ``PREFIX/orphans/<sha256>``, then delete from the store."""
        source = self._key(self.relpath(sha256))
        target = self._key(f"orphans/{sha256}")
        self._call(
            "copy",
            self.client.copy_object,
            Key=target,
            CopySource={"Bucket": self.bucket, "Key": source},
        )
        self._call("delete", self.client.delete_object, Key=source)
        return f"s3://{self.bucket}/{target}"

    def get_named(self, name: str) -> bytes | None:
        try:
            obj = self._call("get", self.client.get_object, Key=self._key(_check_name(name)))
        except BlobNotFound:
            return None
        return self._body(obj, "get")

    def put_named(self, name: str, data: bytes) -> None:
        with contextlib.suppress(_Exists):  # made by another request meanwhile
            self._call(
                "put",
                self.client.put_object,
                Key=self._key(_check_name(name)),
                Body=data,
                IfNoneMatch="*",
            )

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @staticmethod
    def _body(obj: dict[str, Any], what: str) -> bytes:
        try:
            return obj["Body"].read()
        except (BotoCoreError, OSError) as exc:
            msg = f"the object store stopped sending ({what}): {exc}"
            raise BlobStoreUnavailable(msg) from exc
        finally:
            obj["Body"].close()


class _Exists(BlobStoreUnavailable):
    """412 on ``If-None-Match: *``: an object is already there (internal)."""


def _translate(exc: ClientError, what: str) -> Exception:
    err = exc.response.get("Error", {})
    code = str(err.get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if status == 412 or code == "PreconditionFailed":
        return _Exists(what)
    if code in _INTEGRITY:
        return BlobIntegrityError(f"the object store refused the bytes ({what}): {code}")
    if code in _MISSING or code == "NoSuchBucket" or status == 404:
        return BlobNotFound(f"{what}: {code or status}")
    msg = f"the object store answered {status} {code} ({what}): {err.get('Message', '')}"
    if status < 500:  # credentials, permissions: an operator must fix the configuration
        log.error("%s", msg)
    return BlobStoreUnavailable(msg)
