"""Real worker processes (``photocheck serve`` as separate OS processes) on one
PostgreSQL schema and one data folder: what ``serve --workers N`` and several
machines behind a load balancer amount to, with each process addressable on its own
port so a test chooses which worker a request goes to."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import (
    ADMIN,
    TEST_HASHING,
    TEST_SERVICE,
    free_port,
    login,
    loopback_client,
    pg_migrated_schema,
)
from tests.processes import ServiceProcess

ROOT = Path(__file__).resolve().parents[2]
STARTUP_S = 120.0


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A schema of the test PostgreSQL (``PHOTOCHECK_TEST_POSTGRES_URL``) at the newest
    revision, no rows (``pg_migrated_schema``)."""
    with pg_migrated_schema() as url:
        yield url


def service_env(data_dir: Path, database_url: str, **extra: str) -> dict[str, str]:
    """The workers' environment; ``extra`` are settings without the PHOTOCHECK_ prefix."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOCHECK_")}
    env.update(
        PYTHONPATH=str(ROOT),
        PHOTOCHECK_DATA_DIR=str(data_dir),
        PHOTOCHECK_DATABASE_URL=database_url,
        PHOTOCHECK_SECRET_KEY="scale-test-secret-key-shared-by-all-workers",
        PHOTOCHECK_MAX_UPLOAD_MB="8",
        **{
            f"PHOTOCHECK_{k}": v
            for k, v in {**{k: str(v) for k, v in TEST_SERVICE.items()}, **extra}.items()
        },
    )
    return env


@dataclass
class WorkerProcess:
    """One ``photocheck serve`` process on its own port (``module``: another
    entry point with the same command line, e.g. ``tests.scale.counting_serve``)."""

    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    module: str = "api.cli"
    proc: ServiceProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """``python -m MODULE serve --port PORT``, forked from the suite's zygote
        (tests/processes.py: a process of its own, without seconds of imports)."""
        args = ["serve", "--port", str(self.port)]
        self.proc = ServiceProcess(self.module, args, self.env, self.log, ROOT)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_S
        with loopback_client(self.url, timeout=2) as probe:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    tail = self.log.read_text()[-3000:]
                    msg = f"worker exited with {self.proc.returncode}:\n{tail}"
                    raise RuntimeError(msg)
                try:
                    if probe.get("/health").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        msg = f"worker did not start:\n{self.log.read_text()[-3000:]}"
        raise RuntimeError(msg)

    def kill(self) -> None:
        """``kill -9``: no shutdown, no cleanup."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def client(self) -> httpx.Client:
        return loopback_client(self.url + "/api/v1")


@dataclass
class Cluster:
    workers: list[WorkerProcess]
    data_dir: Path
    database_url: str


def start_cluster(
    tmp_path: Path, database_url: str, n: int = 2, *, module: str = "api.cli", **extra: str
) -> Cluster:
    """Migrate and seed the admin once, then start ``n`` worker processes."""
    from api.accounts import add_user
    from api.settings import Settings
    from photocheck.store import Role

    data_dir = tmp_path / "data"
    settings = Settings(DATA_DIR=data_dir, DATABASE_URL=database_url, **TEST_HASHING)  # type: ignore[arg-type]
    add_user(settings, ADMIN[0], ADMIN[1], role=Role.COUNTY, county="丹凤县")
    env = service_env(data_dir, database_url, **extra)
    workers = [WorkerProcess(env, tmp_path / f"worker{i}.log", module=module) for i in range(n)]
    for w in workers:
        w.start()
    for w in workers:
        w.wait_ready()
    return Cluster(workers, data_dir, database_url)


@pytest.fixture
def cluster(tmp_path: Path, pg_schema_url: str) -> Iterator[Cluster]:
    c = start_cluster(tmp_path, pg_schema_url)
    yield c
    for w in c.workers:
        w.stop()


def import_households(client: httpx.Client, csv: str) -> dict[str, dict[str, str]]:
    """Import; log each village in, change its initial password; its headers by name."""
    from tests.api.conftest import activate

    admin = login(client, *ADMIN)
    r = client.post(
        "/households/import", content=csv.encode(), headers={**admin, "content-type": "text/csv"}
    )
    assert r.status_code == 200, r.text
    return {
        a["village"]: activate(client, a["username"], a["password"]) for a in r.json()["accounts"]
    }
