"""Faults survived, with real processes: a worker killed with SIGKILL during an upload
load, and PostgreSQL restarted under a running worker (a private cluster of its own,
never the shared one)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.api.conftest import TEST_HASHING, free_port, loopback_client
from tests.conftest import data_file
from tests.processes import die_with_parent

from .conftest import Cluster, WorkerProcess, import_households, service_env, start_cluster
from .test_workers import TRIAL_PHOTOS, households_csv, upload

pytestmark = pytest.mark.postgres

# The bounded load: uploads alternately through the two workers, 4 at a time, worker 1
# killed after KILL_AFTER answers. What the assertions need is uploads in flight at the
# kill (4 threads), jobs held by worker 1 when it dies (their features run a second
# after each upload) and uploads after it through worker 2: 12 give all three; each
# upload costs ~1 s of CPU (its check, then its scene check and features).
LOAD = 12
KILL_AFTER = 5


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("store", ["local", "s3"])
def test_kill_9_of_a_worker_loses_nothing_acknowledged(
    tmp_path: Path, pg_schema_url: str, store: str, request: pytest.FixtureRequest
) -> None:
    # A worker checks its own uploads' scenes on its threads; the queue's copy of each
    # check waits JOB_LOCAL_GRACE_S (15 s in the service, 1 s here: the test waited
    # 15 s idle for it) and then runs wherever it is picked: on worker 2 for what
    # worker 1 never finished, and copies worker 1 picked before it died are re-picked
    # 2 s after its heartbeat stops.
    blob_settings = request.getfixturevalue("s3_bucket").settings() if store == "s3" else {}
    cluster = start_cluster(
        tmp_path, pg_schema_url, JOB_HEARTBEAT_S="2", JOB_LOCAL_GRACE_S="1", **blob_settings
    )
    w1, w2 = cluster.workers
    try:
        _run_load_and_kill(cluster, w1, w2, blob_settings)
    finally:
        for w in cluster.workers:
            w.stop()


def _run_load_and_kill(
    cluster: Cluster, w1: WorkerProcess, w2: WorkerProcess, blob_settings: dict[str, str]
) -> None:
    with w1.client() as c1:
        v = import_households(c1, households_csv(LOAD))
    east = v["东村"]
    acked: list[tuple[int, str]] = []  # (photo_id, sha256 of the bytes sent)

    def one(i: int) -> None:
        relpath = TRIAL_PHOTOS[i % len(TRIAL_PHOTOS)]
        sha = hashlib.sha256(data_file(relpath).read_bytes()).hexdigest()
        key = f"load-{i}"
        for worker in (w1, w2) if i % 2 == 0 else (w2, w1):
            try:
                with worker.client() as c:
                    r = upload(c, east, f"E{i}", relpath, key=key)
            except httpx.HTTPError:
                continue  # the worker died under us: the same key through the other one
            if r.status_code in (200, 201):
                acked.append((r.json()["photo_id"], sha))
                if len(acked) == KILL_AFTER:
                    w1.kill()
                return

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(LOAD)))
    assert w1.proc is not None and w1.proc.returncode == -9  # it really was killed
    assert len(acked) >= LOAD - 4, acked  # at most the in-flight ones were refused

    engine = create_engine(cluster.database_url)
    try:
        # no job lost: worker 2 finishes what worker 1 held (queue empty, every
        # photo has its scene check and features)
        def drained() -> bool:
            with engine.connect() as conn:
                left: int = conn.execute(text("SELECT count(*) FROM pgqueuer")).scalar_one()
                missing: int = conn.execute(
                    text("SELECT count(*) FROM photos WHERE scene IS NULL OR NOT scene_checked")
                ).scalar_one()
            return left == 0 and missing == 0

        try:
            _wait(drained, 90, "the job queue to drain")
        except AssertionError:
            with engine.connect() as conn:
                held = conn.execute(
                    text("SELECT entrypoint, status, payload, heartbeat FROM pgqueuer")
                ).all()
            raise AssertionError((held, w2.log.read_text()[-4000:])) from None
        with engine.connect() as conn:
            rows = {
                int(str(pid)): (str(sha), str(blob))
                for pid, sha, blob in conn.execute(text("SELECT id, sha256, blob_path FROM photos"))
            }
    finally:
        engine.dispose()
    from api.settings import Settings

    settings = Settings(DATA_DIR=cluster.data_dir, **blob_settings)  # type: ignore[arg-type]
    store = settings.blob_config().store("blobs")  # the originals: local folder or S3
    for photo_id, sha in acked:  # every acknowledged upload: its row and its original
        assert photo_id in rows, photo_id
        assert rows[photo_id][0] == sha
    for photo_id, (sha, blob) in rows.items():  # no row without its original
        data = store.read(blob)
        assert hashlib.sha256(data).hexdigest() == sha, photo_id
    assert len(rows) == len({pid for pid, _ in acked}), "a retried key stored twice"


# PostgreSQL restarted: a private cluster, started and restarted by this test only


def _pg_bin() -> Path | None:
    root = Path("/usr/lib/postgresql")
    versions = sorted(root.iterdir(), key=lambda p: int(p.name)) if root.is_dir() else []
    for v in reversed(versions):
        if (v / "bin" / "pg_ctl").exists():
            return v / "bin"
    return None


class PrivatePostgres:
    """initdb + pg_ctl in a temporary folder on a free port (as user postgres when root)."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="photocheck-pg-"))
        self.port = free_port()
        self.data = self.dir / "data"
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")

    def _run(self, *args: str, check: bool = True) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=check, capture_output=True, timeout=120)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.dir / "log"),
                  "-w", "start")  # fmt: skip

    def stop(self, check: bool = True) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", check=check)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    bin_dir = _pg_bin()
    if bin_dir is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("PostgreSQL server binaries are missing in CI (.ci/run installs them)")
        pytest.skip("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin)")
    pg = PrivatePostgres(bin_dir)
    pg.init()
    pg.start()
    yield pg
    pg.stop(check=False)  # it may be stopped already
    shutil.rmtree(pg.dir, ignore_errors=True)


def test_workers_recover_from_a_postgres_restart(
    tmp_path: Path, private_pg: PrivatePostgres
) -> None:
    # the queue's copy of the worker's own scene check after 1 s, not 15: the test waits
    # for the reconnected job runner to take it from the queue
    cluster = start_cluster(
        tmp_path, private_pg.url, n=1, JOB_HEARTBEAT_S="2", JOB_LOCAL_GRACE_S="1"
    )
    (worker,) = cluster.workers
    try:
        with worker.client() as c:
            east = import_households(c, households_csv(4))["东村"]
            assert upload(c, east, "E0", TRIAL_PHOTOS[0]).status_code == 201
            private_pg.stop()
            down = upload(c, east, "E1", TRIAL_PHOTOS[1], key=f"k-{uuid.uuid4()}")
            assert down.status_code == 503, down.text  # a clear answer, not a hang
            assert "error" in down.json()
            private_pg.start()
            # the same worker, not restarted: the pool reconnects (pool_pre_ping)
            statuses = []
            for i in range(10):
                r = upload(c, east, f"E{2 + i % 2}", TRIAL_PHOTOS[2 + i % 2], key="after")
                statuses.append(r.status_code)
                if r.status_code in (200, 201):
                    break
                time.sleep(1)
            assert statuses[-1] in (200, 201), statuses
            assert c.get("/households/E0", headers=east).status_code == 200
        # the job runner reconnected too: the new photo's features job ran
        engine = create_engine(private_pg.url)
        try:

            def done() -> bool:
                with engine.connect() as conn:
                    return (
                        conn.execute(
                            text(
                                "SELECT count(*) FROM photos"
                                " WHERE scene IS NULL OR NOT scene_checked"
                            )
                        ).scalar_one()
                        == 0
                        and conn.execute(text("SELECT count(*) FROM pgqueuer")).scalar_one() == 0
                    )

            _wait(done, 60, "the jobs after the restart")
        finally:
            engine.dispose()
    finally:
        worker.stop()


def test_serve_workers_2_starts_two_processes(tmp_path: Path, pg_schema_url: str) -> None:
    """``photocheck serve --workers 2``: both processes answer on one port."""
    from api.accounts import add_user
    from api.settings import Settings
    from photocheck.store import Role

    data_dir = tmp_path / "data"
    settings = Settings(DATA_DIR=data_dir, DATABASE_URL=pg_schema_url, **TEST_HASHING)  # type: ignore[arg-type]
    add_user(settings, "admin", "county-secret-1", role=Role.COUNTY, county="丹凤县")
    port = free_port()
    env = service_env(data_dir, pg_schema_url)
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys_executable(), "-m", "api.cli", "serve", "--workers", "2", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent(),
        )  # fmt: skip
    try:
        pids: set[int] = set()
        deadline = time.monotonic() + 180
        # a new connection per probe (Connection: close), so either process may answer
        probe = loopback_client(f"http://127.0.0.1:{port}", timeout=5,
                                headers={"Connection": "close"})  # fmt: skip
        with probe:
            while len(pids) < 2 and time.monotonic() < deadline:
                try:
                    r = probe.get("/health")
                    if r.status_code == 200:
                        pids.add(r.json()["pid"])
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        assert len(pids) == 2, log.read_text()[-3000:]
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


def sys_executable() -> str:
    import sys

    return sys.executable
