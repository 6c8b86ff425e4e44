"""A retry after a crash succeeds at once: a real server process killed (kill -9) mid-upload.

Two moments, caught by one kill: one upload is still being sent (nothing claimed yet)
while another is being checked (its key claimed ``pending`` by a process that then no
longer exists; the first process holds its checks, ``tests/scale/held_check_serve.py``,
so the kill comes while the check runs). Either way the retry the contract tells the
app to make answers 201 at once; it used to be refused 409 for five minutes. On SQLite
and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import data_file
from tests.scale.conftest import WorkerProcess, service_env

from .conftest import ADMIN, activate, login, loopback_client, make_settings, seed_admin

GOOD = "buildings/strecha_herz_jesu/herz_jesu_0000.jpg"
OTHER = "buildings/camera_corpus/fujifilm_ds7_2_japanese_house.jpg"  # K2's photo
HOUSEHOLDS = """household_id,head_name,town,village,category,site_id,lat,lon
K1,张三,龙驹寨镇,东村,鉴定安全,,33.70,110.30
K2,李四,龙驹寨镇,东村,改造安全,,33.701,110.301
"""
# well under the 60 s a retry would wait for a live first request before its 409
RETRY_TIMEOUT_S = 45


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
    # its own process (forked from the suite's zygote), so that it can be killed for real;
    # its photo checks never return (held_check_serve), the restarted one's are the service's
    env = service_env(settings.DATA_DIR, database_url)
    server = WorkerProcess(env, tmp_path / "serve.log", module="tests.scale.held_check_serve")
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
        held, held_type = _multipart(data_file(OTHER).read_bytes(), "other.jpg")

        def send_held() -> None:
            with contextlib.suppress(httpx.HTTPError):  # the server dies under it
                httpx.post(server.url + "/api/v1/households/K2/photos", content=held, timeout=60,
                           headers={**village, "Idempotency-Key": "crash-2",
                                    "content-type": held_type})  # fmt: skip

        sender = threading.Thread(target=send_held)
        sender.start()
        deadline = time.monotonic() + 60
        while _pending_keys(database_url) == 0:
            assert time.monotonic() < deadline, "the upload never claimed its key"
            time.sleep(0.05)
        server.kill()
        sender.join(timeout=60)
    assert _pending_keys(database_url) == 1  # K2's, left behind; K1 never claimed one
    server.module = "api.cli"  # the service as it is, checks and all
    server.start()
    server.wait_ready()

    with loopback_client(server.url + "/api/v1", timeout=RETRY_TIMEOUT_S) as client:
        for household, key, data, kind in (
            ("K1", "crash-1", body, ctype),
            ("K2", "crash-2", held, held_type),
        ):
            headers = {**village, "Idempotency-Key": key, "content-type": kind}
            first = client.post(f"/households/{household}/photos", content=data, headers=headers)
            assert first.status_code == 201, (household, first.text)
            again = client.post(f"/households/{household}/photos", content=data, headers=headers)
            assert again.status_code == 200 and again.json() == first.json()
            history = client.get(f"/households/{household}", headers=village).json()["history"]
            assert len(history) == 1, history
    assert _pending_keys(database_url) == 0
