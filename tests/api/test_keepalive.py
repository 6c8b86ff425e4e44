"""After a 5xx the connection stays open for the next request (HTTP keep-alive).

A 500 used to close it: Starlette's server-error middleware re-raises after answering,
and uvicorn closes a connection whose application raised. A route that fails on
purpose is added to the real app, served by uvicorn on a loopback port.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from api.main import create_app

from .conftest import free_port, loopback_client, make_settings


@pytest.fixture
def failing_server(tmp_path: Path) -> Iterator[str]:
    app = create_app(make_settings(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}"))

    def broken() -> dict[str, str]:
        msg = "a bug"
        raise RuntimeError(msg)

    app.add_api_route("/broken", broken)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def _local_port(r: httpx.Response) -> int:
    return r.extensions["network_stream"].get_extra_info("client_addr")[1]


def test_a_500_keeps_the_connection(failing_server: str) -> None:
    with loopback_client(failing_server, timeout=30) as client:
        first = client.get("/broken")
        assert first.status_code == 500
        assert first.json()["error"]["code"] == "INTERNAL_ERROR"
        assert "Traceback" not in first.text and "a bug" not in first.text
        assert first.headers.get("connection", "").lower() != "close"
        after = client.get("/health")
        assert after.status_code == 200
        assert _local_port(after) == _local_port(first)  # the same TCP connection
        again = client.get("/broken")
        assert again.status_code == 500 and _local_port(again) == _local_port(first)
