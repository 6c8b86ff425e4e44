"""The blob-store interface on both implementations: a local folder and real S3
(SeaweedFS, ``tests/s3.py``). Same tests, same expectations."""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from pathlib import Path

import pytest

from api.migrate import upgrade
from photocheck.errors import BlobIntegrityError, BlobNotFound, BlobStoreUnavailable
from photocheck.store import BlobConfig, BlobStore, Database, reconcile
from photocheck.store.blobs import PendingBlob
from tests.conftest import data_file
from tests.s3 import ACCESS_KEY, SECRET_KEY, S3Bucket, free_ports

PHOTO = "buildings/strecha_herz_jesu/herz_jesu_0000.jpg"


@pytest.fixture(params=["local", "s3"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> BlobConfig:
    if request.param == "local":
        return BlobConfig(tmp_path / "data")
    bucket: S3Bucket = request.getfixturevalue("s3_bucket")
    return BlobConfig(tmp_path / "data", **_s3(bucket))


def _s3(bucket: S3Bucket) -> dict[str, str]:
    return {
        "url": bucket.url,
        "s3_endpoint": bucket.server.endpoint,
        "s3_access_key": ACCESS_KEY,
        "s3_secret_key": SECRET_KEY,
    }


@pytest.fixture
def store(config: BlobConfig) -> BlobStore:
    return config.store("blobs")


def _staged(store: BlobStore, data: bytes, sha256: str | None = None) -> PendingBlob:
    writer = store.open_writer(len(data))
    writer.write(data)
    pending = writer.finish()
    if sha256 is not None:
        pending.sha256 = sha256  # what a corrupted transfer would look like
    return pending


def test_store_read_range_exists_list(store: BlobStore) -> None:
    data = data_file(PHOTO).read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    assert not store.exists(sha)
    rel = store.commit(_staged(store, data))
    assert rel == f"{sha[:2]}/{sha[2:4]}/{sha}"
    assert store.exists(sha) and store.size(rel) == len(data)
    assert store.read(rel) == data
    assert b"".join(store.iter_range(rel, 1000, 5000)) == data[1000:5000]
    chunks = list(store.iter_range(rel, 0, len(data)))
    assert b"".join(chunks) == data and len(chunks) >= 2  # streamed, 1 MiB at a time
    assert [b.sha256 for b in store.iter_blobs()] == [sha]
    assert list(store.tmp.iterdir()) == []  # the staging file is gone
    with pytest.raises(BlobNotFound):
        store.read(store.relpath("0" * 64))
    with pytest.raises(ValueError, match="not a blob address"):
        store.read("../../etc/passwd")


def test_sha_mismatch_is_refused_and_nothing_stored(store: BlobStore) -> None:
    data = b"\xff\xd8\xff" + bytes(5000)
    wrong = hashlib.sha256(b"other bytes").hexdigest()
    pending = _staged(store, data, sha256=wrong)
    with pytest.raises(BlobIntegrityError):
        store.commit(pending)
    pending.discard()
    assert not store.exists(wrong)
    assert list(store.iter_blobs()) == []


@pytest.mark.parametrize("change", ["appended", "rewritten"])
def test_a_staged_file_changed_after_it_was_hashed_is_read_back_and_refused(
    tmp_path: Path, change: str
) -> None:
    """A folder commits a staged upload by its digest made while writing only while the
    file is as it was written; a file written again after that is hashed again on commit
    and refused. (S3 checks what it receives itself.)"""
    store = BlobConfig(tmp_path / "data").store("blobs")
    data = data_file(PHOTO).read_bytes()
    pending = _staged(store, data)
    if change == "appended":
        with pending.path.open("ab") as fh:
            fh.write(b"tail")
    else:  # same size, other bytes, a later write time (as any later write has)
        pending.path.write_bytes(b"\x00" * len(data))
        st = pending.path.stat()
        os.utime(pending.path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    with pytest.raises(BlobIntegrityError):
        store.commit(pending)
    pending.discard()
    assert not store.exists(hashlib.sha256(data).hexdigest())


def test_a_stored_blob_is_never_overwritten(store: BlobStore) -> None:
    original = b"\xff\xd8\xff original " + bytes(3000)
    sha = hashlib.sha256(original).hexdigest()
    rel = store.put_bytes(original)
    # the same address again, with other bytes (a forged or corrupted upload): refused
    # or ignored, never replacing what is stored
    forged = _staged(store, b"\xff\xd8\xff forged!! " + bytes(3000), sha256=sha)
    with contextlib.suppress(BlobIntegrityError):  # S3 refuses it, a folder ignores it
        assert store.commit(forged) == rel
    forged.discard()
    assert store.put_bytes(original) == rel  # the same bytes: the same address, kept
    assert store.read(rel) == original


def test_named_previews_written_once(config: BlobConfig) -> None:
    previews = config.store("previews")
    assert previews.get_named("abc_480.jpg") is None
    previews.put_named("abc_480.jpg", b"first")
    previews.put_named("abc_480.jpg", b"second")  # a concurrent request: kept as it was
    assert previews.get_named("abc_480.jpg") == b"first"
    with pytest.raises(ValueError):
        previews.put_named("../escape", b"x")


def test_reconcile_on_both_stores(config: BlobConfig, tmp_path: Path) -> None:
    """Orphans (a blob whose row never came) leave the store after the grace; a
    staging file of a crashed upload is deleted; a fresh blob of a running upload stays."""
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    upgrade(db.engine)
    store = config.store("blobs")
    (store.tmp / "upload-crashed").write_bytes(b"half an upload")
    orphan = store.put_bytes(b"committed blob whose row never came")
    assert reconcile(db, store).clean  # within the grace: maybe another worker's upload
    time.sleep(1.1)  # S3 LastModified has whole seconds
    report = reconcile(db, store, grace_s=1)
    assert report.temp_removed == 1
    assert report.orphans_moved == [Path(orphan).name]
    assert list(store.iter_blobs()) == []
    assert reconcile(db, store, grace_s=0).clean
    db.dispose()


def test_s3_store_down_is_unavailable_fast(tmp_path: Path) -> None:
    """Nothing listens there: every operation fails with BlobStoreUnavailable (short
    timeouts, one retry), not a hang or a botocore error."""
    (port,) = free_ports(1)
    config = BlobConfig(
        tmp_path, "s3://bucket-down/p", s3_endpoint=f"http://127.0.0.1:{port}",
        s3_access_key="k", s3_secret_key="s",
    )  # fmt: skip
    store = config.store("blobs")
    pending = _staged(store, b"\xff\xd8\xff" + bytes(100))
    for call in (
        lambda: store.commit(pending),
        lambda: store.read(store.relpath(pending.sha256)),
        lambda: store.exists(pending.sha256),
        lambda: list(store.iter_blobs()),
        store.prepare,
    ):
        with pytest.raises(BlobStoreUnavailable):
            call()


def test_a_missing_bucket_is_created_at_start(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    fresh = S3Bucket(s3_bucket.server, f"{s3_bucket.name}-new", s3_bucket.client)
    store = BlobConfig(tmp_path, **_s3(fresh)).store("blobs")
    store.prepare()
    store.prepare()  # the second start finds it
    rel = store.put_bytes(b"\xff\xd8\xff first photo")
    assert fresh.keys("blobs/") == [f"photocheck/blobs/{rel}"]


def test_blob_url_must_be_s3(tmp_path: Path) -> None:
    for bad in ("file:///tmp/x", "s3://", "http://host/bucket"):
        with pytest.raises(ValueError, match="s3://BUCKET/PREFIX"):
            BlobConfig(tmp_path, bad)
    assert BlobConfig(tmp_path, "s3://b/some/prefix/").bucket_and_prefix() == ("b", "some/prefix")
