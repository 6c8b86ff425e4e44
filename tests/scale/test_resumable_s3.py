"""Resumable uploads with the partial bytes in S3 (a SeaweedFS of this module's own,
so it can be stopped) and two worker processes on one PostgreSQL: every HEAD and
PATCH goes to a random worker, so no sticky sessions are needed. Under ``CI=true`` a
missing ``weed`` or PostgreSQL fails these tests."""

from __future__ import annotations

import hashlib
import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import pg_schema
from tests.api.test_resumable import CHUNK, PHOTO, TUS, _create, _offset, _village, cut_ten_times
from tests.conftest import data_file
from tests.s3 import S3Bucket, SeaweedFS

from .conftest import Cluster, WorkerProcess, start_cluster

OTHER_PHOTO = "buildings/strecha_herz_jesu/herz_jesu_0004.jpg"  # another real 3 MB photo
OCTET = {**TUS, "Content-Type": "application/offset+octet-stream"}


@dataclass
class TusCluster:
    cluster: Cluster
    weed: SeaweedFS
    bucket: S3Bucket
    check_log: Path
    auth: dict[str, str]

    @property
    def workers(self) -> list[WorkerProcess]:
        return self.cluster.workers

    def checks(self) -> int:
        return len(self.check_log.read_text().split()) if self.check_log.exists() else 0

    def partial_keys(self, upload_id: str) -> list[str]:
        return sorted(k.rsplit("/", 1)[1] for k in self.bucket.keys(f"partial/{upload_id}/"))

    def multipart_uploads(self) -> list[str]:
        answer = self.bucket.client.list_multipart_uploads(
            Bucket=self.bucket.name, Prefix=f"{self.bucket.prefix}/partial/"
        )
        return [u["Key"] for u in answer.get("Uploads", ())]


@pytest.fixture(scope="module")
def tus_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TusCluster]:
    root = tmp_path_factory.mktemp("tus-s3")
    weed = SeaweedFS(root / "weed")
    weed.start()
    try:
        bucket = weed.new_bucket()
        with pg_schema() as url:
            check_log = root / "checks.log"
            cluster = start_cluster(
                root,
                url,
                2,
                module="tests.scale.counting_serve",
                TEST_CHECK_LOG=str(check_log),
                **bucket.settings(),
            )
            try:
                with cluster.workers[0].client() as client:
                    auth = _village(client)
                yield TusCluster(cluster, weed, bucket, check_log, auth)
            finally:
                for w in cluster.workers:  # both at once: each takes seconds to exit
                    if w.proc is not None and w.proc.poll() is None:
                        w.proc.terminate()
                for w in cluster.workers:
                    w.stop()
    finally:
        weed.stop()


def _history(worker: WorkerProcess, auth: dict[str, str], household: str) -> list[dict]:
    with worker.client() as client:
        r = client.get(f"/households/{household}", headers=auth)
        assert r.status_code == 200, r.text
        return list(r.json()["history"])


def test_ten_cuts_across_two_workers(tus_cluster: TusCluster) -> None:
    """One record, checked once, byte for byte in the bucket; the partial objects and
    the multipart upload are gone, the answer kept for a client that lost it."""
    c = tus_cluster
    data = data_file(PHOTO).read_bytes()
    before = c.checks()
    with c.workers[0].client() as client:
        path = _create(client, c.auth, data, capture=json.dumps({"lat": 33.7, "lon": 110.3}))
    upload_id = path.rsplit("/", 1)[1]
    sent, result = cut_ten_times(c.workers, c.auth, path, data)
    assert len(data) <= sent <= len(data) + 10 * CHUNK
    assert c.checks() - before == 1
    assert [h["photo_id"] for h in _history(c.workers[1], c.auth, "R1")] == [result["photo_id"]]
    sha = hashlib.sha256(data).hexdigest()
    key = f"{c.bucket.prefix}/blobs/{sha[:2]}/{sha[2:4]}/{sha}"
    stored = c.bucket.client.get_object(Bucket=c.bucket.name, Key=key)["Body"].read()
    assert stored == data  # byte for byte, through the blob store
    assert c.partial_keys(upload_id) == ["info.json", "result.json"]
    assert c.multipart_uploads() == []

    # the answer lost and the last PATCH sent again, through either worker: the same
    for worker in c.workers:
        again = httpx.patch(
            worker.url + path,
            content=b"",
            headers={**c.auth, **OCTET, "Upload-Offset": str(len(data))},
        )
        assert again.status_code == 200 and again.json() == result
        assert _offset(worker, c.auth, path) == len(data)
    assert c.checks() - before == 1


def test_a_silently_dead_link_is_let_go_across_workers(tus_cluster: TusCluster) -> None:
    """The PATCH of a link that died silently still holds the upload on worker 1; the
    client's HEAD on worker 2 waits for it in PostgreSQL, where that PATCH sees it and
    lets go (not after the 60 s idle limit), and the upload completes on worker 2."""
    c = tus_cluster
    data = data_file(OTHER_PHOTO).read_bytes()
    first, second = c.workers
    with first.client() as client:
        path = _create(client, c.auth, data)
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\n"
        f"Authorization: {c.auth['Authorization']}\r\n"
        f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode()
    before = c.checks()
    with socket.create_connection(("127.0.0.1", first.port), timeout=120) as stalled:
        stalled.sendall(head + data[:100_000])  # then silence, the socket left open
        time.sleep(1.0)  # worker 1 is inside the PATCH, waiting for more
        r = httpx.head(second.url + path, headers={**c.auth, **TUS}, timeout=120)
        assert r.status_code == 200, r.text  # not 423: the old PATCH let go
        offset = int(r.headers["Upload-Offset"])
        assert 0 <= offset <= 100_000
        r = httpx.patch(
            second.url + path,
            content=data[offset:],
            headers={**c.auth, **OCTET, "Upload-Offset": str(offset)},
            timeout=120,
        )
        assert r.status_code == 200, r.text
    assert c.checks() - before == 1
    assert r.json()["photo_id"] in [h["photo_id"] for h in _history(first, c.auth, "R1")]


def test_store_outage_during_a_patch(tus_cluster: TusCluster) -> None:
    """SeaweedFS stopped while a PATCH is sending: 503 STORAGE_UNAVAILABLE in both
    languages, the bytes acknowledged before are kept; started again, the upload
    resumes (through the other worker) from there, with no restart of the workers."""
    c = tus_cluster
    data = data_file(PHOTO).read_bytes()
    first, second = c.workers
    with first.client() as client:
        path = _create(client, c.auth, data, household="R2")
    half = len(data) // 2
    r = httpx.patch(
        second.url + path, content=data[:half], headers={**c.auth, **OCTET, "Upload-Offset": "0"}
    )
    assert r.status_code == 204 and r.headers["Upload-Offset"] == str(half)

    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\n"
        f"Authorization: {c.auth['Authorization']}\r\n"
        f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: {half}\r\n"
        f"Content-Length: {len(data) - half}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", first.port), timeout=120) as s:
        s.sendall(head + data[half : half + 100_000])
        time.sleep(0.5)  # the PATCH is under way (or not yet: 503 all the same)
        c.weed.stop()
        s.sendall(data[half + 100_000 :])
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    status, _, rest = answer.partition(b"\r\n")
    assert b" 503 " in status, answer[:600]
    headers, _, body = rest.partition(b"\r\n\r\n")
    error = json.loads(body)["error"]
    assert error["code"] == "STORAGE_UNAVAILABLE" and error["message"] and error["message_zh"]
    assert b"tus-resumable: 1.0.0" in headers.lower() and b"retry-after" in headers.lower()
    assert b"Traceback" not in answer
    r = httpx.head(second.url + path, headers={**c.auth, **TUS})
    assert r.status_code == 503 and r.headers["Tus-Resumable"] == "1.0.0"
    assert _history(first, c.auth, "R2") == []

    c.weed.start()  # same ports, same data
    offset = _offset(second, c.auth, path)
    assert offset == half  # what was acknowledged, nothing of the failed PATCH
    before = c.checks()
    r = httpx.patch(
        second.url + path,
        content=data[offset:],
        headers={**c.auth, **OCTET, "Upload-Offset": str(offset)},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    assert c.checks() - before == 1
    assert [h["photo_id"] for h in _history(first, c.auth, "R2")] == [r.json()["photo_id"]]
