"""Resumable uploads (tus 1.0) against a real server: a raw-socket client cuts the
connection at ten random points of one upload and resumes from the offset the server
reports; the photo is stored once, byte for byte, and checked once."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import random
import socket
import struct
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import func, select

from api.routes import photos as photo_routes
from api.routes import tus as tus_routes
from photocheck.store import Photo
from photocheck.store.resumable import (
    PartialStore,
    PartialUpload,
    PartialUploads,
    UploadBusy,
    UploadGone,
)
from photocheck.store.s3resumable import PART_MIN, S3PartialUploads
from photocheck.store.upload_locks import FileUploadLocks, PgUploadLocks
from tests.conftest import data_file
from tests.s3 import S3Bucket

from .conftest import ADMIN, LiveServer, activate, login, pg_schema

PHOTO = "buildings/strecha_herz_jesu/herz_jesu_0007.jpg"  # 3.0 MB, a real building
CHUNK = 256 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
HOUSEHOLDS = """household_id,head_name,town,village,category,site_id,lat,lon
R1,张三,龙驹寨镇,东村,鉴定安全,,33.70,110.30
R2,李四,龙驹寨镇,东村,鉴定安全,,33.70,110.30
"""


def _village(client: httpx.Client) -> dict[str, str]:
    admin = login(client, *ADMIN)
    r = client.post(
        "/households/import",
        content=HOUSEHOLDS.encode(),
        headers={**admin, "content-type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    (account,) = r.json()["accounts"]
    return activate(client, account["username"], account["password"])


def _meta(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def _create(client: httpx.Client, auth: dict, data: bytes, household: str = "R1", **meta) -> str:
    sha = meta.pop("sha256", hashlib.sha256(data).hexdigest())
    r = client.post(
        "/uploads",
        headers={
            **auth,
            **TUS,
            "Upload-Length": str(len(data)),
            "Upload-Metadata": _meta(household_id=household, sha256=sha, **meta),
        },
    )
    assert r.status_code == 201, r.text
    assert r.headers["Tus-Resumable"] == "1.0.0" and "Upload-Expires" in r.headers
    return urlsplit(r.headers["Location"]).path


class Endpoint(Protocol):
    """A server a request can go to (``LiveServer`` or a worker process)."""

    @property
    def url(self) -> str: ...

    port: int


def _offset(server: Endpoint, auth: dict, path: str) -> int:
    r = httpx.head(server.url + path, headers={**auth, **TUS}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "no-store"
    return int(r.headers["Upload-Offset"])


def _raw_patch(
    server: Endpoint, auth: dict, path: str, offset: int, body: bytes, send: int
) -> tuple[int, bytes]:
    """PATCH over a raw socket; sends only ``send`` bytes of the body when cutting, then
    resets the connection (no answer read). Returns (body bytes sent, answer)."""
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\n"
        f"Authorization: {auth['Authorization']}\r\n"
        f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=120) as s:
        s.sendall(head)
        s.sendall(body[:send])
        if send < len(body):  # the link breaks: RST, unread bytes are lost on both sides
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return send, b""
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
        return send, answer


def _photos(server: LiveServer) -> int:
    with server.app_state.db.session() as session:
        return session.scalar(select(func.count()).select_from(Photo)) or 0


def test_ten_cuts_one_record_checked_once(
    server: LiveServer, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ten_cuts(server, client, monkeypatch)


def cut_ten_times(
    servers: Sequence[Endpoint], auth: dict, path: str, data: bytes
) -> tuple[int, dict[str, Any]]:
    """Send ``data`` in ``CHUNK`` PATCHes, each to a random one of ``servers``, resetting
    the connection at 10 random points and resuming from ``HEAD``'s offset (also asked
    of a random server). Returns the body bytes sent in all and the final answer."""
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(data)), 10))
    sent = requests = 0
    answer = b""
    while not answer:
        offset = _offset(rng.choice(servers), auth, path)
        body = data[offset : offset + CHUNK]
        cut = next((c for c in cuts if offset < c < offset + len(body)), None)
        send = len(body) if cut is None else cut - offset
        n, answer = _raw_patch(rng.choice(servers), auth, path, offset, body, send)
        if cut is not None:
            cuts.remove(cut)
        sent, requests = sent + n, requests + 1
        assert requests < 100, "no progress"
        if answer and b" 204 " in answer.split(b"\r\n")[0]:
            answer = b""  # a chunk in the middle: go on
    status, _, rest = answer.partition(b"\r\n")
    assert b" 200 " in status, answer[:500]
    result = json.loads(rest.split(b"\r\n\r\n", 1)[1])
    assert not cuts, "every cut happened"
    print(
        f"\nseed {seed}: {len(data)} bytes, {sent} sent in {requests} PATCHes to "
        f"{len(servers)} server(s) (+{sent - len(data)} = {(sent - len(data)) / CHUNK:.2f} "
        "chunks over 10 cuts)"
    )
    assert len(data) <= sent <= len(data) + 10 * CHUNK
    return sent, result


def _ten_cuts(server: LiveServer, client: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    auth = _village(client)
    checks = []
    real_check = photo_routes.check_photo

    def counting_check(*args, **kwargs):  # the real check, counted
        checks.append(1)
        return real_check(*args, **kwargs)

    monkeypatch.setattr(photo_routes, "check_photo", counting_check)
    data = data_file(PHOTO).read_bytes()
    path = _create(client, auth, data, capture=json.dumps({"lat": 33.7, "lon": 110.3}))
    _, result = cut_ten_times([server], auth, path, data)
    assert len(checks) == 1 and _photos(server) == 1
    assert result["household_id"] == "R1" and result["photo_id"] is not None
    with server.app_state.db.session() as session:
        photo = session.get(Photo, result["photo_id"])
        assert photo is not None and photo.sha256 == hashlib.sha256(data).hexdigest()
        stored = server.app_state.blobs.read(photo.blob_path)
    assert stored == data  # byte for byte

    # the answer lost and the last PATCH sent again: the same answer, nothing new
    again = httpx.patch(
        server.url + path,
        content=b"",
        headers={
            **auth,
            **TUS,
            "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": str(len(data)),
        },
    )
    assert again.status_code == 200 and again.json() == result
    assert _offset(server, auth, path) == len(data)
    assert len(checks) == 1 and _photos(server) == 1
    assert not list(server.app_state.settings.partial_dir.glob("*.part"))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_protocol_answers(server: LiveServer, client: httpx.Client) -> None:
    auth = _village(client)
    data = data_file(PHOTO).read_bytes()
    r = client.options("/uploads")
    assert r.status_code == 204
    assert r.headers["Tus-Version"] == "1.0.0"
    assert set(r.headers["Tus-Extension"].split(",")) == {"creation", "termination", "expiration"}
    assert int(r.headers["Tus-Max-Size"]) == server.app_state.settings.max_upload_bytes

    no_version = client.post("/uploads", headers={**auth, "Upload-Length": "10"})
    assert no_version.status_code == 412 and no_version.headers["Tus-Version"] == "1.0.0"
    too_big = client.post(
        "/uploads",
        headers={
            **auth,
            **TUS,
            "Upload-Length": str(10**9),
            "Upload-Metadata": _meta(household_id="R1", sha256="0" * 64),
        },
    )
    assert too_big.status_code == 413
    no_sha = client.post(
        "/uploads",
        headers={**auth, **TUS, "Upload-Length": "10", "Upload-Metadata": _meta(household_id="R1")},
    )
    assert no_sha.status_code == 400 and no_sha.json()["error"]["code"] == "INVALID_METADATA"
    other = client.post(
        "/uploads",
        headers={
            **auth,
            **TUS,
            "Upload-Length": "10",
            "Upload-Metadata": _meta(household_id="NOPE", sha256="0" * 64),
        },
    )
    assert other.status_code == 404
    assert client.post("/uploads", headers={**TUS, "Upload-Length": "10"}).status_code == 401
    for bad_meta, status in (
        (_meta(household_id="R\x001", sha256="0" * 64), 400),
        (_meta(household_id="R1", sha256="0" * 64, capture='{"lat": 999}'), 422),
        ("household_id !!!", 400),
    ):
        r = client.post(
            "/uploads", headers={**auth, **TUS, "Upload-Length": "10", "Upload-Metadata": bad_meta}
        )
        assert r.status_code == status, (bad_meta, r.text)
        assert r.headers["Tus-Resumable"] == "1.0.0"

    path = _create(client, auth, data)
    octet = {**auth, **TUS, "Content-Type": "application/offset+octet-stream"}
    r = httpx.patch(server.url + path, content=data[:1000], headers={**octet, "Upload-Offset": "0"})
    assert r.status_code == 204 and r.headers["Upload-Offset"] == "1000"
    wrong = httpx.patch(
        server.url + path, content=data[1000:2000], headers={**octet, "Upload-Offset": "0"}
    )
    assert wrong.status_code == 409 and wrong.headers["Upload-Offset"] == "1000"
    plain = httpx.patch(
        server.url + path, content=data[1000:2000], headers={**auth, **TUS, "Upload-Offset": "1000"}
    )
    assert plain.status_code == 415
    assert _offset(server, auth, path) == 1000
    assert httpx.delete(server.url + path, headers={**auth, **TUS}).status_code == 204
    assert httpx.head(server.url + path, headers={**auth, **TUS}).status_code == 404

    # a file whose bytes differ from the announced SHA-256: refused, nothing stored
    bad = _create(client, auth, data, sha256=hashlib.sha256(b"other").hexdigest())
    r = httpx.patch(
        server.url + bad, content=data, headers={**octet, "Upload-Offset": "0"}, timeout=60
    )
    assert r.status_code == 460 and r.json()["error"]["code"] == "CHECKSUM_MISMATCH"
    assert _photos(server) == 0

    # practice (模拟录入) through tus: a verdict, nothing stored
    practice = _create(client, auth, data, practice="true")
    r = httpx.patch(
        server.url + practice, content=data, headers={**octet, "Upload-Offset": "0"}, timeout=60
    )
    assert r.status_code == 200 and r.json()["practice"] is True and r.json()["photo_id"] is None
    assert _photos(server) == 0


def test_partial_uploads_expire_and_are_swept(tmp_path: Path) -> None:
    store = PartialUploads(tmp_path, dt.timedelta(hours=1))
    live = store.create(1, 10, {"household_id": "R1"}, {})
    gone = PartialUploads(tmp_path, dt.timedelta(seconds=-1)).create(1, 10, {}, {})
    with store.locked(gone.id) as fh:  # (writing() would find it expired)
        fh.write(b"12345")
    assert store.offset(gone.id) == 5
    assert store.sweep() == 1
    with pytest.raises(UploadGone):
        store.get(gone.id)
    assert not (tmp_path / f"{gone.id}.part").exists()
    assert store.get(live.id).length == 10
    with pytest.raises(UploadGone):
        store.get("../../etc/passwd")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_upload_survives_a_server_restart(server: LiveServer, client: httpx.Client) -> None:
    auth = _village(client)
    data = data_file(PHOTO).read_bytes()
    path = _create(client, auth, data, household="R2")
    half = len(data) // 2
    octet = {**auth, **TUS, "Content-Type": "application/offset+octet-stream"}
    r = httpx.patch(server.url + path, content=data[:half], headers={**octet, "Upload-Offset": "0"})
    assert r.status_code == 204
    server.restart()  # the stored half and the upload's record are files, fsynced
    assert _offset(server, auth, path) == half
    r = httpx.patch(
        server.url + path,
        content=data[half:],
        headers={**octet, "Upload-Offset": str(half)},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert r.json()["household_id"] == "R2" and _photos(server) == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_silently_dead_link_does_not_hold_the_upload(
    server: LiveServer, client: httpx.Client
) -> None:
    """The old PATCH still waits for bytes that will never come (no reset reached the
    server); the client's new connection resumes at once from what was stored."""
    auth = _village(client)
    data = data_file(PHOTO).read_bytes()
    path = _create(client, auth, data)
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\n"
        f"Authorization: {auth['Authorization']}\r\n"
        f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as stalled:
        stalled.sendall(head + data[:100_000])  # then silence, the socket left open
        upload_id = path.rsplit("/", 1)[1]
        for _ in range(1000):  # until the server is inside that PATCH, waiting for more
            if upload_id in tus_routes._receiving:
                break
            time.sleep(0.01)
        # the new connection asks the old PATCH to let go (else: 423 after 15 s)
        offset = _offset(server, auth, path)
        assert 0 <= offset <= 100_000
        octet = {**auth, **TUS, "Content-Type": "application/offset+octet-stream"}
        r = httpx.patch(
            server.url + path,
            content=data[offset:],
            headers={**octet, "Upload-Offset": str(offset)},
            timeout=60,
        )
        assert r.status_code == 200, r.text
    assert _photos(server) == 1
    with server.app_state.db.session() as session:
        photo = session.scalars(select(Photo)).one()
        assert server.app_state.blobs.read(photo.blob_path) == data


def _patches(store: PartialStore, upload_id: str, data: bytes, size: int, at: int = 0) -> None:
    """Append ``data`` (from byte ``at`` of the file) as PATCHes of ``size`` bytes, each
    its own hold of the upload."""
    for start in range(0, len(data), size):
        with store.writing(upload_id) as writer:
            assert writer.offset == at + start
            writer.write(data[start : start + size])
            writer.sync()


def test_s3_partial_uploads_fold_complete_expire(tmp_path: Path, s3_bucket: S3Bucket) -> None:
    """Partial uploads in S3 (SeaweedFS): small PATCHes stay objects of their own until
    they make a 5 MiB part; every offset is read back by a store that shares nothing
    but the bucket with the writer (another worker); completion gives the file byte for
    byte; an expired upload is swept with its multipart upload."""

    def store(expiry: dt.timedelta = dt.timedelta(hours=1)) -> S3PartialUploads:
        locks = FileUploadLocks(tmp_path / "locks")
        return S3PartialUploads(
            s3_bucket.client,
            s3_bucket.name,
            "photocheck/partial",
            locks,
            expiry,
            tmp_path / "staging",
        )

    def objects(upload_id: str) -> list[str]:
        return sorted(k.rsplit("/", 1)[1] for k in s3_bucket.keys(f"partial/{upload_id}/"))

    def parts(upload: PartialUpload) -> list[int]:
        answer = s3_bucket.client.list_parts(
            Bucket=s3_bucket.name,
            Key=f"photocheck/partial/{upload.id}/data",
            UploadId=upload.extra["multipart"],
        )
        return [p["Size"] for p in answer.get("Parts", ())]

    data = os.urandom(PART_MIN + PART_MIN // 3)
    writer_side = store()
    upload = writer_side.create(1, len(data), {"household_id": "R1"}, {})
    _patches(writer_side, upload.id, data[: PART_MIN - 1000], 1024 * 1024)
    assert parts(upload) == []  # 5 tail objects, no part yet
    assert len([n for n in objects(upload.id) if n.startswith("c")]) == 5
    with store().writing(upload.id) as other:  # another worker: the offset is in S3
        assert other.offset == PART_MIN - 1000
        other.write(data[PART_MIN - 1000 : PART_MIN + 1000])  # the tail reaches 5 MiB: a part
        other.sync()
    assert parts(upload) == [PART_MIN + 1000]
    assert objects(upload.id) == ["info.json"]  # the folded tail objects are gone
    _patches(store(), upload.id, data[PART_MIN + 1000 :], 600_000, at=PART_MIN + 1000)
    with store().writing(upload.id) as last:
        assert last.offset == len(data)
        pending = last.assemble(tmp_path / "staging")
        assert pending.read() == data and pending.sha256 == hashlib.sha256(data).hexdigest()
        last.finish({"photo_id": 7})
    pending.discard()
    assert objects(upload.id) == ["info.json", "result.json"]
    assert store().result(upload.id) == {"photo_id": 7}
    with pytest.raises(UploadGone):  # finished: no more bytes
        store().writing(upload.id).__enter__()

    small = writer_side.create(1, 1000, {}, {})  # under 5 MiB: no multipart upload at all
    assert "multipart" not in small.extra
    _patches(writer_side, small.id, data[:1000], 300)
    with store().writing(small.id) as w:
        assert w.assemble(tmp_path / "staging").read() == data[:1000]

    stale = store().create(1, len(data), {}, {})
    _patches(store(), stale.id, data[: PART_MIN + 2000], PART_MIN // 2)
    assert parts(stale) and objects(stale.id) == ["c" + f"{PART_MIN // 2 * 2:012d}", "info.json"]
    record = json.loads(
        s3_bucket.client.get_object(
            Bucket=s3_bucket.name, Key=f"photocheck/partial/{stale.id}/info.json"
        )["Body"].read()
    )
    record["expires_at"] = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)).isoformat()
    s3_bucket.client.put_object(
        Bucket=s3_bucket.name,
        Body=json.dumps(record).encode(),
        Key=f"photocheck/partial/{stale.id}/info.json",
    )
    assert store().sweep() == 1  # the clock passed its expiry
    assert objects(stale.id) == []
    uploads = s3_bucket.client.list_multipart_uploads(Bucket=s3_bucket.name, Prefix="photocheck/")
    assert uploads.get("Uploads", []) == []  # aborted (a file under 5 MiB never has one)
    with pytest.raises(UploadGone):
        store().get(stale.id)


def test_pg_upload_lock_one_writer_and_release_request() -> None:
    """The PostgreSQL lock of an upload: a second holder waits and gives up with
    UploadBusy; while one waits the holder sees it (``contended``) and lets go, and
    the waiter gets the lock."""
    with pg_schema() as url:
        locks = PgUploadLocks(url)
        upload_id = os.urandom(16).hex()
        got: list[float] = []

        def wait_for_it() -> None:
            with locks.hold(upload_id, 30.0):
                got.append(time.monotonic())

        try:
            with locks.hold(upload_id, 1.0) as held:
                assert not held.contended()
                with pytest.raises(UploadBusy), locks.hold(upload_id, 0.2):
                    pass
                waiter = threading.Thread(target=wait_for_it)
                waiter.start()
                deadline = time.monotonic() + 30
                while not held.contended():
                    assert time.monotonic() < deadline, "the waiter is never seen"
                    time.sleep(0.05)
                assert not got  # still ours
            waiter.join(30)
            assert got, "the waiter got the lock once it was let go"
            with locks.hold(upload_id, 1.0) as again:
                assert not again.contended()
        finally:
            locks.close()
