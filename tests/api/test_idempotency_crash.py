"""A retry after a crash succeeds at once: a real server process killed (kill -9) mid-upload.

Two moments, caught by one kill: one upload is still being sent (nothing claimed yet)
while another is being checked (its key claimed ``pending`` by a process that then no
longer exists). Either way the retry the contract tells the app to make answers 201 at
once; it used to be refused 409 for five minutes. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import data_file
from tests.scale.conftest import WorkerProcess, service_env

from .conftest import ADMIN, activate, login, loopback_client, make_settings, seed_admin

GOOD = "buildings/strecha_herz_jesu/herz_jesu_0000.jpg"
HOUSEHOLDS = """household_id,head_name,town,village,category,site_id,lat,lon
K1,张三,龙驹寨镇,东村,鉴定安全,,33.70,110.30
K2,李四,龙驹寨镇,东村,改造安全,,33.701,110.301
"""
# well under the 60 s a retry would wait for a live first request before its 409
RETRY_TIMEOUT_S = 45


@functools.cache  # seconds of zlib: made once for both databases
def _slow_png() -> bytes:
    """A 16-bit grey PNG of 10950x10950 (233 KB): seconds of decoding, time to kill."""
    side = 10950
    row = bytes(1 + side * 2)
    packer = zlib.compressobj(9)
    idat = b"".join([packer.compress(row) for _ in range(side)] + [packer.flush()])

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", side, side, 16, 0, 0, 0, 0)
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def _multipart(data: bytes, name: str) -> tuple[bytes, str]:
    body = (
        (
            f'--bnd\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + b"\r\n--bnd--\r\n"
    )
    return body, "multipart/form-data; boundary=bnd"


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[tuple[WorkerProcess, str]]:
    settings = make_settings(tmp_path, database_url)
    seed_admin(settings)
    # its own process (forked from the suite's zygote), so that it can be killed for real
    server = WorkerProcess(service_env(settings.DATA_DIR, database_url), tmp_path / "serve.log")
    server.start()
    server.wait_ready()
    try:
        yield server, database_url
    finally:
        server.kill()


def _pending_keys(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            q = "SELECT count(*) FROM idempotency_keys WHERE status = 'pending'"
            return int(conn.scalar(text(q)) or 0)
    finally:
        engine.dispose()


def test_retry_after_kill_succeeds_at_once(served: tuple[WorkerProcess, str]) -> None:
    server, database_url = served
    with loopback_client(server.url + "/api/v1", timeout=RETRY_TIMEOUT_S) as client:
        admin = login(client, *ADMIN)
        r = client.post("/households/import", content=HOUSEHOLDS.encode(),
                        headers={**admin, "content-type": "text/csv"})  # fmt: skip
        assert r.status_code == 200, r.text
        account = r.json()["accounts"][0]
        village = activate(client, account["username"], account["password"])

    # K1: half of its photo sent when the server dies (nothing claimed yet)
    photo = data_file(GOOD).read_bytes()
    body, ctype = _multipart(photo, "house.jpg")
    with socket.create_connection(("127.0.0.1", server.port)) as sending:
        head = (
            f"POST /api/v1/households/K1/photos HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: {village['Authorization']}\r\nIdempotency-Key: crash-1\r\n"
            f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        sending.sendall(head.encode() + body[: len(body) // 2])

        # K2: being checked when the server dies (its key claimed by a dead process)
        slow, slow_type = _multipart(_slow_png(), "slow.png")

        def send_slow() -> None:
            with contextlib.suppress(httpx.HTTPError):  # the server dies under it
                httpx.post(server.url + "/api/v1/households/K2/photos", content=slow, timeout=60,
                           headers={**village, "Idempotency-Key": "crash-2",
                                    "content-type": slow_type})  # fmt: skip

        sender = threading.Thread(target=send_slow)
        sender.start()
        deadline = time.monotonic() + 60
        while _pending_keys(database_url) == 0:
            assert time.monotonic() < deadline, "the upload never claimed its key"
            time.sleep(0.05)
        server.kill()
        sender.join(timeout=60)
    assert _pending_keys(database_url) == 1  # K2's, left behind; K1 never claimed one
    server.start()
    server.wait_ready()

    with loopback_client(server.url + "/api/v1", timeout=RETRY_TIMEOUT_S) as client:
        for household, key, data, kind in (
            ("K1", "crash-1", body, ctype),
            ("K2", "crash-2", slow, slow_type),
        ):
            headers = {**village, "Idempotency-Key": key, "content-type": kind}
            first = client.post(f"/households/{household}/photos", content=data, headers=headers)
            assert first.status_code == 201, (household, first.text)
            again = client.post(f"/households/{household}/photos", content=data, headers=headers)
            assert again.status_code == 200 and again.json() == first.json()
            history = client.get(f"/households/{household}", headers=village).json()["history"]
            assert len(history) == 1, history
    assert _pending_keys(database_url) == 0
