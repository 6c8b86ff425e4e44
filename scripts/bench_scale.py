#!/usr/bin/env python3
"""Scale-out costs, measured in one run: PostgreSQL with 1 and 2 worker processes, with
the originals in the local folder and in SeaweedFS (S3), and the cross-county
duplicate index at county-to-national sizes in a real database.

``upload``: a fresh schema in ``PHOTOCHECK_TEST_POSTGRES_URL`` (or ``--pg``), N
``photocheck serve`` processes (each on its own port, clients spread over them, as a
load balancer would) plus N ``photocheck worker`` processes (``--job-workers``; the
serve processes run no jobs here, so the scene checks' CPU shows apart); ``--store
local s3``: the originals in the data folder, then in a fresh bucket of a SeaweedFS
started here on free ports (``tests.s3.SeaweedFS``, stopped at the end). Prints
uploads/s and CPU ms per upload of each component from /proc: the serve processes
(during the load), their PostgreSQL backends (found by ``application_name``), the job
workers and SeaweedFS (until every photo's scene check ran); and from the job workers'
own log (``_worker``: each scene check, XFeat extraction and pair verification with
its thread CPU) the checks, pairs verified per check and CPU per pair.

``index``: a bench schema filled by PostgreSQL itself (``generate_series``: one
household and one photo per row, random PDQ, GPS, no embedding; secondary indexes
and foreign keys dropped, tables unlogged) up to 1 M / 5 M / 25 M photos. At each size
a fresh worker process (``_ready``) starts as a restarting one does
(``Intake.rebuild_index``): first with no snapshot (the bulk read,
``store.indexload.bulk_load``), which then writes one, then again from that snapshot.
Each prints its ready time, resident memory growth (VmRSS) and the median / p99
same-photo query (8 dihedral variants, the policy's radius); the row-by-row start-up
of before (``dup_entries`` + ``DuplicateIndex.build``) is timed on ``--sample`` rows
and scaled to N. At the largest size the write lock's hold time per upload is
measured on real photos, with the index query before the lock (now) and inside it
(before), interleaved. The schema and files are removed at the end.

    python scripts/bench_scale.py upload [--workers 1 2] [--store local s3] [--clients 4]
                                         [--photos 24] [--job-workers N]
    python scripts/bench_scale.py index [--n 1000000 5000000 25000000] [--sample 200000]
    python scripts/bench_scale.py rows
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_upload import (
    DEFAULT_DIRS,
    free_port,
    http_rate,
    large_photos,
    multipart,
    process_cpu,
    village_login,
)

APP = "photocheck_bench"


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


# --- upload: PostgreSQL, 1 and 2 worker processes ------------------------------------


def wait_up(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 300) -> None:
    """Until /health answers 200 (a loaded machine may take minutes to load the model)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if httpx.get(url).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    proc.kill()
    msg = f"server did not start within {timeout_s:.0f} s"
    raise RuntimeError(msg)


def schema_url(base: str) -> tuple[str, str]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    engine = create_engine(base)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    opts = quote(f"-csearch_path={schema}")
    sep = "&" if "?" in base else "?"
    return schema, f"{base}{sep}options={opts}&application_name={APP}_{schema}"


def backend_pids(base: str, schema: str) -> list[int]:
    engine = create_engine(base)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT pid FROM pg_stat_activity WHERE application_name = :a"),
            {"a": f"{APP}_{schema}"},
        ).all()
        out = [int(row[0]) for row in rows]
    engine.dispose()
    return out


def counted_worker(log: Path) -> int:
    """``photocheck worker`` (this process) with each scene check, XFeat feature
    extraction and pair verification logged to ``log`` with its thread CPU seconds
    (the XFeat sessions are single-threaded, so the calling thread's CPU is theirs)."""
    from api.cli import main
    from photocheck.store import intake, scenes

    def counted(cls: Any, name: str) -> None:
        real = getattr(cls, name)

        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return real(self, *args, **kwargs)
            finally:
                with open(log, "a") as f:
                    f.write(f"{name} {time.thread_time() - started:.6f}\n")

        setattr(cls, name, wrapper)

    counted(intake.Intake, "run_scene_check")
    counted(scenes.XFeatSceneMatcher, "features")
    counted(scenes.XFeatSceneMatcher, "verify")
    sys.argv = ["photocheck", "worker"]
    return main()


def scene_log(log: Path) -> dict[str, tuple[int, float]]:
    """{name: (calls, thread CPU seconds)} from a ``counted_worker`` log."""
    out: dict[str, tuple[int, float]] = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        name, secs = line.split()
        n, total = out.get(name, (0, 0.0))
        out[name] = (n + 1, total + float(secs))
    return out


def unchecked(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        query = text("SELECT count(*) FROM photos WHERE NOT scene_checked")
        n: int = conn.execute(query).scalar_one()
    engine.dispose()
    return n


def wait_checked(url: str, timeout_s: float) -> float:
    """Until every stored photo's scene check ran (the job queue drained); seconds."""
    started = time.perf_counter()
    while unchecked(url) and time.perf_counter() - started < timeout_s:
        time.sleep(0.5)
    if unchecked(url):
        msg = f"scene checks still pending after {timeout_s:.0f} s"
        raise RuntimeError(msg)
    return time.perf_counter() - started


def run_upload(
    base: str,
    workers: int,
    clients: int,
    photos: list[Path],
    rounds: int,
    weed: Any = None,
    job_workers: int | None = None,
) -> None:
    """``weed``: a running ``tests.s3.SeaweedFS`` (the originals go to a fresh bucket on
    it and its CPU is counted), else the local folder. ``job_workers``: how many
    ``photocheck worker`` processes (default: as many as serve processes)."""
    job_workers = job_workers or workers
    schema, url = schema_url(base)
    data_dir = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    blobs: dict[str, str] = weed.new_bucket().env() if weed is not None else {}
    env = {
        **os.environ,
        **blobs,
        "PHOTOCHECK_DATA_DIR": str(data_dir),
        "PHOTOCHECK_DATABASE_URL": url,
        "PHOTOCHECK_MAX_UPLOAD_MB": "40",
        "PHOTOCHECK_SECRET_KEY": "bench-secret-key-shared-by-the-workers",
        "PHOTOCHECK_JOBS_IN_SERVE": "false",
    }
    exe = [sys.executable, "-m", "api.cli"]
    subprocess.run(
        [*exe, "user", "add", "bench-admin", "--county", "bench"],
        input=b"bench-password\n",
        env=env,
        check=True,
        capture_output=True,
    )
    ports = [free_port() for _ in range(workers)]
    procs = [
        subprocess.Popen(
            [*exe, "serve", "--port", str(p)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for p in ports
    ]
    log = data_dir / "scene-checks.log"
    jobs = [
        subprocess.Popen(
            [sys.executable, __file__, "_worker", "--log", str(log)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(job_workers)
    ]
    try:
        for p, proc in zip(ports, procs, strict=True):
            wait_up(f"http://127.0.0.1:{p}/health", proc)
        datas = [p.read_bytes() for p in photos]
        headers = village_login(
            f"http://127.0.0.1:{ports[0]}/api/v1", [None for _ in range(len(datas) * rounds)]
        )
        bodies = [
            (i, *multipart(f"{i}.jpg", datas[i % len(datas)])) for i in range(len(datas) * rounds)
        ]
        # warm-up: one upload per worker (model sessions, first queries)
        for k, p in enumerate(ports):
            http_rate(f"http://127.0.0.1:{p}/api/v1", headers, [bodies[k]], 1)
        wait_checked(url, 600)  # and their scene checks (the XFeat sessions load once)
        time.sleep(4)  # the audit refresh the warm-up's matches asked for (3 s debounce)
        todo = bodies[len(ports) :]
        pg = backend_pids(base, schema)
        scenes0 = scene_log(log)

        def cpu() -> dict[str, float]:
            out = {
                "serve": sum(process_cpu(p.pid) for p in procs),
                "postgres": sum(process_cpu(p) for p in pg),
                "jobs": sum(process_cpu(j.pid) for j in jobs),
            }
            if weed is not None:
                out["seaweedfs"] = process_cpu(weed.process.pid)
            return out

        before = cpu()
        started = time.perf_counter()
        # clients spread over the workers (a load balancer's round robin)
        per = [todo[i :: len(ports)] for i in range(len(ports))]
        per_worker = max(1, clients // len(ports))
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(ports)) as pool:
            list(
                pool.map(
                    lambda a: http_rate(
                        f"http://127.0.0.1:{a[0]}/api/v1",
                        headers,
                        a[1],
                        per_worker,
                    ),
                    zip(ports, per, strict=True),
                )
            )
        wall = time.perf_counter() - started
        served = cpu()["serve"]  # the serve processes' part ends with the load
        lag = wait_checked(url, 900)  # the job backlog the load left
        time.sleep(4)  # the audit refresh job (3 s debounce) is counted below when done
        pg = backend_pids(base, schema)  # pools may have opened more backends meanwhile
        after = {**cpu(), "serve": served}  # the rest: until every scene check ran
        scenes1 = scene_log(log)
        n = len(todo)
        store = "SeaweedFS (S3)" if weed is not None else "local blobs"
        size = statistics.mean(len(b[1]) for b in todo) / 1e6
        print(
            f"PostgreSQL + {store}, {workers} serve process(es) + {job_workers} job "
            f"worker(s), {clients} clients, {n} uploads of {size:.2f} MB mean: "
            f"{n / wall:.2f} uploads/s (request path); every scene check done "
            f"{lag:.1f} s after the last answer ({n / (wall + lag):.2f} uploads/s checked)"
        )
        for name in before:
            ms = (after[name] - before[name]) * 1000 / n
            print(f"  CPU per upload, {name:9s}: {ms:7.1f} ms")
        print(
            "  (postgres: this schema's backends only; WAL writer/checkpointer are shared "
            "with other users of the cluster and not counted)"
        )
        done = {
            k: (c - scenes0.get(k, (0, 0.0))[0], t - scenes0.get(k, (0, 0.0))[1])
            for k, (c, t) in scenes1.items()
        }
        checks, check_s = done.get("run_scene_check", (0, 0.0))
        feats, feat_s = done.get("features", (0, 0.0))
        pairs, pair_s = done.get("verify", (0, 0.0))
        job_ms = (after["jobs"] - before["jobs"]) * 1000
        print(
            f"  scene checks (XFeat): {checks} checks, {pairs} pairs verified "
            f"({pairs / max(checks, 1):.2f} per check), features made {feats}x; "
            f"job workers' CPU {job_ms / max(checks, 1):.0f} ms per check; thread CPU: "
            f"check {check_s * 1000 / max(checks, 1):.0f} ms, features "
            f"{feat_s * 1000 / max(feats, 1):.0f} ms each, verify "
            f"{pair_s * 1000 / max(pairs, 1):.1f} ms per pair"
        )
    finally:
        for proc in [*procs, *jobs]:
            proc.terminate()
        for proc in [*procs, *jobs]:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        engine = create_engine(base)
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()
        shutil.rmtree(data_dir, ignore_errors=True)


# --- index: the cross-county duplicate index at scale, built from a real database -----

FILL_BLOCK = 1_000_000


def fill_schema(base: str) -> tuple[str, str]:
    """A bench schema at the newest revision, secondary indexes and foreign keys of
    ``photos`` / ``households`` dropped (the synthetic fill is 25 M rows; the start-up
    read uses the primary keys only)."""
    from api.migrate import upgrade
    from photocheck.store import Database

    schema, url = schema_url(base)
    db = Database(url)
    upgrade(db.engine)
    with db.engine.begin() as conn:
        for name, table in conn.execute(
            text(
                "SELECT conname, conrelid::regclass::text FROM pg_constraint "
                "WHERE connamespace = current_schema()::regnamespace AND contype IN ('f', 'u') "
                "AND (conrelid::regclass::text IN ('photos', 'households') "
                "OR confrelid::regclass::text IN ('photos', 'households'))"
            )
        ).all():
            conn.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT IF EXISTS "{name}"'))
        for (name,) in conn.execute(
            text(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
                "AND tablename IN ('photos', 'households') AND indexname NOT LIKE '%pkey' "
                # the partial index of unchecked photos stays: empty, as every row is checked
                "AND indexname <> 'ix_photos_scene_unchecked'"
            )
        ).all():
            conn.execute(text(f'DROP INDEX IF EXISTS "{name}"'))
        # no WAL for the bench's synthetic rows (nothing references them any more)
        conn.execute(text("ALTER TABLE photos SET UNLOGGED"))
        conn.execute(text("ALTER TABLE households SET UNLOGGED"))
        conn.execute(
            text(
                "INSERT INTO counties (id, name) SELECT g, 'county ' || g "
                "FROM generate_series(1, 2000) g"
            )
        )
        conn.execute(text("INSERT INTO towns (id, county_id, name) VALUES (1, 1, 't')"))
        conn.execute(text("INSERT INTO villages (id, town_id, name) VALUES (1, 1, 'v')"))
        conn.execute(
            text(
                "INSERT INTO users (id, username, password_hash, role, county_id, "
                "must_change_password, failed_logins, created_at) "
                "VALUES (1, 'bench', 'x', 'county', 1, false, 0, now())"
            )
        )
    db.dispose()
    return schema, url


def fill_to(url: str, have: int, n: int) -> float:
    """Synthetic households and photos (one each, random PDQ, GPS, no embedding) from
    ``have`` to ``n`` rows, made by PostgreSQL itself; returns seconds."""
    started = time.perf_counter()
    engine = create_engine(url)
    for lo in range(have, n, FILL_BLOCK):
        hi = min(n, lo + FILL_BLOCK)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO households (id, county_id, village_id, household_code, "
                    "head_name, category) SELECT g, 1 + g % 2000, 1, 'H' || g, 'h', "
                    "'appraised' FROM generate_series(CAST(:lo AS int), CAST(:hi AS int)) g"
                ),
                {"lo": lo + 1, "hi": hi},
            )
            conn.execute(
                text(
                    "INSERT INTO photos (id, household_id, sha256, bytes, blob_path, "
                    "export_name, verdict, reasons, metrics, uploaded_by, uploaded_at, "
                    "policy_version, model_version, is_current, scene_checked, pdq, "
                    "gps_lat, gps_lon) SELECT g, g, encode(sha256(int8send(g)), 'hex'), "
                    "3000000, 'x', 'x', 'pass', '[]', '{}', 1, now(), 'p', 'm', true, true, "
                    "encode(sha256(int8send(-g)), 'hex'), 33 + (g % 1000) * 0.001, "
                    "110 + (g % 997) * 0.001 "
                    "FROM generate_series(CAST(:lo AS int), CAST(:hi AS int)) g"
                ),
                {"lo": lo + 1, "hi": hi},
            )
        print(f"  filled {hi:,} photos", file=sys.stderr)
    with engine.begin() as conn:
        conn.execute(text("SELECT setval('photos_id_seq', :n)"), {"n": n})
        conn.execute(text("SELECT setval('households_id_seq', :n)"), {"n": n})
        conn.execute(text("ANALYZE photos"))
        conn.execute(text("ANALYZE households"))
    engine.dispose()
    return time.perf_counter() - started


def secondary_indexes(url: str) -> float:
    """The photos indexes an upload's write uses (exact digests, the household's
    photos), made again after the fill; returns seconds."""
    started = time.perf_counter()
    engine = create_engine(url)
    with engine.begin() as conn:
        for col in ("sha256", "pixel_sha256", "household_id"):
            conn.execute(text(f"CREATE INDEX IF NOT EXISTS ix_photos_{col} ON photos ({col})"))
    engine.dispose()
    return time.perf_counter() - started


def rows_path(url: str, sample: int) -> tuple[float, float]:
    """The row-by-row start-up (``dup_entries`` + ``DuplicateIndex.build``) on the first
    ``sample`` photos: (rows/s read, rows/s built)."""
    import itertools

    from photocheck.store import Database
    from photocheck.store.dupindex import DuplicateIndex
    from photocheck.store.repo import dup_entries

    db = Database(url)
    with db.session() as session:
        started = time.perf_counter()
        entries = list(itertools.islice(dup_entries(session), sample))
        read_s = time.perf_counter() - started
    started = time.perf_counter()
    DuplicateIndex().build(entries)
    build_s = time.perf_counter() - started
    db.dispose()
    return len(entries) / read_s, len(entries) / build_s


def ready_child(
    url: str, index_dir: Path, queries: int, lock_photos: list[Path], *, jobs: bool = False
) -> None:
    """One restarting worker (this process): the index loaded by ``rebuild_index``
    (snapshot if there is one, else the bulk read), then queries and the lock bench;
    ``jobs``: a job process instead (``photocheck worker``: ``Intake.load_index``, the
    same snapshot-then-catch-up start, no unchecked-photo scan); prints one JSON line."""
    import json

    from photocheck import default_policy
    from photocheck.store import Database
    from photocheck.store.blobs import LocalBlobStore
    from photocheck.store.intake import Intake

    policy = default_policy()
    db = Database(url)
    rss0 = rss_bytes()  # after the imports: the index's own growth
    intake = Intake(
        db, LocalBlobStore(index_dir.parent / "blobs"), policy, None, index_dir=index_dir
    )
    load = intake._load_index
    phases: dict[str, float] = {}

    def timed_load() -> None:
        t = time.perf_counter()
        load()
        phases["load_s"] = time.perf_counter() - t

    intake._load_index = timed_load  # type: ignore[method-assign]
    catch_up = intake.catch_up

    def timed_catch_up(session: Any, *, newest: int | None = None) -> int:
        t = time.perf_counter()
        got = catch_up(session, newest=newest)
        phases["catch_up_s"] = phases.get("catch_up_s", 0.0) + time.perf_counter() - t
        return got

    intake.catch_up = timed_catch_up  # type: ignore[method-assign]
    started = time.perf_counter()
    if jobs:
        intake.load_index()  # what run_worker does before its first job
    else:
        intake.rebuild_index(backfill=False)
    out: dict[str, Any] = {
        "ready_s": time.perf_counter() - started,
        **phases,
        "from": intake.loaded_from,
        "rows": len(intake.index),
        "rss_mb": (rss_bytes() - rss0) / 1e6,
        "index_mb": intake.index.memory_bytes() / 1e6,
    }
    rng = np.random.default_rng(5)
    radius = policy.similarity.same_photo_max_distance
    times = []
    for _ in range(queries):
        variants = [rng.integers(0, 256, 32, dtype=np.uint8).tobytes() for _ in range(8)]
        t = time.perf_counter()
        intake.index.same_photo(pdq_variants=variants, max_distance=radius)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    out["query_median_ms"] = statistics.median(times)
    out["query_p99_ms"] = times[min(len(times) - 1, int(0.99 * len(times)))]
    if intake.loaded_from == "database":
        t = time.perf_counter()
        intake.save_snapshot()
        out["snapshot_write_s"] = time.perf_counter() - t
    if lock_photos:
        out.update(lock_bench(intake, lock_photos))
    print("RESULT " + json.dumps(out), flush=True)
    db.dispose()


def lock_bench(intake: Any, photos: list[Path]) -> dict[str, Any]:
    """Time the write lock is held per upload (``Database.write()``: the PostgreSQL
    advisory lock until the commit, then the index append), with the PDQ query of the
    whole index before the lock (now) and, as before this change, inside it (the
    in-lock query made a full one): the same uploads, interleaved."""
    from contextlib import contextmanager

    from photocheck import ContentModel
    from photocheck.pipeline import check_photo
    from photocheck.store.intake import Upload

    model = ContentModel()
    db = intake.db
    write = db.write
    held: list[float] = []

    @contextmanager
    def timed_write() -> Iterator[Any]:
        with write() as session:
            t = time.perf_counter()
            try:
                yield session
            finally:
                held.append(time.perf_counter() - t)

    db.write = timed_write
    real_hits = intake._pdq_hits
    results: dict[str, list[float]] = {"now": [], "before": [], "warm-up": []}
    for i, path in enumerate(photos):
        data = path.read_bytes()
        report = check_photo(data, policy=intake.policy, model=model)
        mode = "warm-up" if i < 2 else ("now" if i % 2 == 0 else "before")
        if mode == "before":  # the old order: the whole index asked inside the lock
            intake._pdq_hits = lambda r, after=0: real_hits(r, 0)
        writer = intake.blobs.open_writer(len(data))
        writer.write(data)
        pending = writer.finish()
        held.clear()
        emb = report.scores.embedding if report.scores is not None else None
        intake.submit(Upload(i + 1, 1, report, pending, embedding=emb))
        pending.discard()
        intake._pdq_hits = real_hits
        results[mode].append(held[-1] * 1000)
    db.write = write
    stages = intake.timings.to_json()
    print(
        "  stages (s total): " + ", ".join(f"{k} {v['total_s']:.3f}" for k, v in stages.items()),
        file=sys.stderr,
    )
    now, before = statistics.median(results["now"]), statistics.median(results["before"])
    return {
        "lock_now_ms": now,
        "lock_before_ms": before,
        "lock_uploads": len(results["now"]) + len(results["before"]),
        "lock_now_p90_ms": sorted(results["now"])[int(0.9 * len(results["now"]))],
        "lock_before_p90_ms": sorted(results["before"])[int(0.9 * len(results["before"]))],
    }


def run_index(
    base: str, sizes: list[int], queries: int, sample: int, lock_photos: list[Path]
) -> None:
    import json

    schema, url = fill_schema(base)
    work = Path(tempfile.mkdtemp(prefix="bench-index-"))
    index_dir = work / "dupindex"
    have = 0
    try:
        for n in sorted(sizes):
            fill_s = fill_to(url, have, n)
            have = n
            print(f"synthetic database: {n:,} photos and households ({fill_s:.0f} s to fill)")
            if n == min(sizes):
                read_rate, build_rate = rows_path(url, min(sample, n))
                print(
                    f"  row-by-row start-up (dup_entries + build, on {min(sample, n):,} rows): "
                    f"read {read_rate:,.0f} rows/s, build {build_rate:,.0f} rows/s"
                )
            old = n / read_rate + n / build_rate
            lock = n == max(sizes) and bool(lock_photos)
            index_s = secondary_indexes(url) if lock else 0.0
            shutil.rmtree(index_dir / "snapshots", ignore_errors=True)
            runs = {}
            for step in ("database", "snapshot", "worker"):
                cmd = [sys.executable, __file__, "_ready", "--url", url, "--dir", str(index_dir)]
                cmd += ["--queries", str(queries if step != "worker" else 10)]
                if step == "worker":
                    cmd += ["--jobs"]
                if step == "database" and lock:
                    cmd += ["--lock-photos", *map(str, lock_photos)]
                done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
                line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
                if not line:
                    print(done.stdout[-2000:], file=sys.stderr)
                    raise RuntimeError(f"the {step} start failed")
                runs[step] = json.loads(line[0][7:])
            db, snap, job = runs["database"], runs["snapshot"], runs["worker"]
            print(
                f"index {n:>11,} PDQ: worker resident +{db['rss_mb']:7.1f} MB "
                f"({db['rss_mb'] * 1e6 / n:.0f} B/photo; arrays {db['index_mb']:.0f} MB), "
                f"same-photo query (8 variants) median {db['query_median_ms']:.2f} ms, "
                f"p99 {db['query_p99_ms']:.2f} ms"
            )
            print(
                f"  ready after a restart: row-by-row ~{old:,.0f} s (extrapolated) | "
                f"bulk read {db['ready_s']:.1f} s ({old / db['ready_s']:.0f}x faster) | "
                f"snapshot {snap['ready_s']:.1f} s ({old / snap['ready_s']:.0f}x faster; "
                f"resident +{snap['rss_mb']:.0f} MB); snapshot written in "
                f"{db.get('snapshot_write_s', 0):.1f} s"
            )
            print(
                f"  (of which loading the index: bulk {db['load_s']:.1f} s, snapshot "
                f"{snap['load_s']:.1f} s; catch-up {db['catch_up_s']:.1f} / "
                f"{snap['catch_up_s']:.1f} s; the rest is the unchecked-photo scan)"
            )
            print(
                f"  photocheck worker (job process) ready before its first scene check: "
                f"{job['ready_s']:.1f} s from the {job['from']} ({job['rows']:,} photos; "
                f"load {job['load_s']:.1f} s, catch-up {job['catch_up_s']:.1f} s; "
                f"resident +{job['rss_mb']:.0f} MB); before this change its first job read "
                f"every row: ~{old:,.0f} s (the row-by-row figure)"
            )
            if "lock_now_ms" in db:
                print(f"  (secondary indexes made again for the lock bench: {index_s:.0f} s)")
                print(
                    f"  write lock held per upload at {n:,}: {db['lock_now_ms']:.1f} ms with the "
                    f"query before the lock vs {db['lock_before_ms']:.1f} ms with it inside "
                    f"({db['lock_before_ms'] / db['lock_now_ms']:.1f}x); ceiling "
                    f"{1000 / db['lock_now_ms']:.0f} vs {1000 / db['lock_before_ms']:.0f} "
                    f"uploads/s ({db['lock_uploads']} uploads, interleaved)"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
        engine = create_engine(base)
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def run_query(sizes: list[int], queries: int) -> None:
    """The same-photo query alone on an index built from random columns (no database):
    wall median / p99 and CPU (this thread's) median per query; CPU time is what a
    loaded machine does not inflate much."""
    from photocheck import default_policy
    from photocheck.store.dupindex import EMBEDDING_DIMS, DuplicateIndex, IndexColumns

    radius = default_policy().similarity.same_photo_max_distance
    rng = np.random.default_rng(9)
    for n in sizes:

        def blocks(n: int = n) -> Iterator[IndexColumns]:
            for lo in range(0, n, 1 << 20):
                k = min(n, lo + (1 << 20)) - lo
                yield IndexColumns(
                    photo_id=np.arange(lo + 1, lo + k + 1, dtype=np.int64),
                    household_id=np.arange(lo + 1, lo + k + 1, dtype=np.int32),
                    county_id=rng.integers(1, 2001, k, dtype=np.int32),
                    pdq=rng.integers(0, 2**63, (k, 4), dtype=np.uint64),
                    has_pdq=np.ones(k, dtype=bool),
                    latlon=np.full((k, 2), np.nan, dtype=np.float32),
                    embedding=np.zeros((k, EMBEDDING_DIMS), dtype=np.int8),
                    has_embedding=np.zeros(k, dtype=bool),
                )

        index = DuplicateIndex()
        started = time.perf_counter()
        index.build_columns(blocks(), capacity=n)
        build_s = time.perf_counter() - started
        walls, cpus = [], []
        for _ in range(queries):
            variants = [rng.integers(0, 256, 32, dtype=np.uint8).tobytes() for _ in range(8)]
            t, c = time.perf_counter(), time.thread_time()
            index.same_photo(pdq_variants=variants, max_distance=radius)
            cpus.append((time.thread_time() - c) * 1000)
            walls.append((time.perf_counter() - t) * 1000)
        walls.sort()
        print(
            f"query {n:>11,} PDQ (vectorised build {build_s:.1f} s): wall median "
            f"{statistics.median(walls):.2f} ms, p99 {walls[int(0.99 * len(walls))]:.2f} ms; "
            f"CPU median {statistics.median(cpus):.2f} ms per query (8 variants)"
        )
        del index


def run_rows(photos: list[Path]) -> None:
    """What one stored photo costs in PostgreSQL: scene features, embedding, report."""
    import json

    from photocheck import ContentModel, default_policy
    from photocheck.pipeline import check_photo
    from photocheck.store.dupindex import embedding_to_bytes
    from photocheck.store.scenes import scene_matcher

    policy, model = default_policy(), ContentModel()
    scene = scene_matcher(policy, None)  # type: ignore[arg-type]  # the default (XFeat); no blobs
    feats, embs, reports, sizes = [], [], [], []
    for path in photos:
        data = path.read_bytes()
        report = check_photo(data, policy=policy, model=model)
        if report.photo is None:
            continue
        sizes.append(len(data))
        feats.append(len(scene.features(report.photo.grey)))
        emb = report.scores.embedding if report.scores is not None else None
        embs.append(len(embedding_to_bytes(emb)) if emb is not None else 0)
        reports.append(len(json.dumps(report.to_json(), default=str)))
    n = len(sizes)
    print(
        f"per stored photo ({n} real photos, mean {statistics.mean(sizes) / 1e6:.2f} MB): "
        f"scene features ({policy.similarity.scene_matcher}) "
        f"{statistics.mean(feats) / 1e3:.1f} kB, embedding "
        f"{statistics.mean(embs) / 1e3:.1f} kB, report JSON {statistics.mean(reports) / 1e3:.1f} kB"
    )


def run_uploads(args: argparse.Namespace, photos: list[Path]) -> None:
    """Every store x worker count of the arguments, in one run (SeaweedFS started once,
    on free ports, a bucket per run; stopped at the end)."""
    weed = None
    if "s3" in args.store:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.s3 import SeaweedFS

        weed = SeaweedFS(Path(tempfile.mkdtemp(prefix="bench-weed-")))
        weed.start()
    try:
        for store in args.store:
            for w in args.workers:
                run_upload(
                    args.pg,
                    w,
                    args.clients,
                    photos,
                    args.rounds,
                    weed if store == "s3" else None,
                    args.job_workers,
                )
    finally:
        if weed is not None:
            weed.stop()
            shutil.rmtree(weed.root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    pg_default = os.environ.get("PHOTOCHECK_TEST_POSTGRES_URL")
    p = sub.add_parser("upload")
    p.add_argument("--pg", default=pg_default)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--photos", type=int, default=16)
    p.add_argument("--store", nargs="+", choices=["local", "s3"], default=["local", "s3"])
    p.add_argument("--job-workers", type=int, default=None, help="default: = --workers")
    p = sub.add_parser("_worker")  # one counted `photocheck worker`, started by "upload"
    p.add_argument("--log", type=Path, required=True)
    p = sub.add_parser("index")
    p.add_argument("--pg", default=pg_default)
    p.add_argument("--n", type=int, nargs="+", default=[1_000_000, 5_000_000, 25_000_000])
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--sample", type=int, default=200_000, help="rows of the row-by-row path")
    p.add_argument("--lock-uploads", type=int, default=16)
    p = sub.add_parser("_ready")  # one restarting worker, started by "index"
    p.add_argument("--url", required=True)
    p.add_argument("--dir", type=Path, required=True)
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--lock-photos", type=Path, nargs="*", default=[])
    p.add_argument("--jobs", action="store_true", help="start as `photocheck worker` does")
    p = sub.add_parser("query")
    p.add_argument("--n", type=int, nargs="+", default=[1_000_000, 5_000_000, 25_000_000])
    p.add_argument("--queries", type=int, default=300)
    p = sub.add_parser("rows")
    p.add_argument("--photos", type=int, default=12)
    args = parser.parse_args()
    if args.mode == "_ready":
        ready_child(args.url, args.dir, args.queries, args.lock_photos, jobs=args.jobs)
        return 0
    if args.mode == "_worker":
        return counted_worker(args.log)
    if args.mode == "query":
        run_query(args.n, args.queries)
        return 0
    if args.mode == "rows":
        run_rows([p for d in DEFAULT_DIRS for p in large_photos(d, 0.3, 30)][: args.photos])
        return 0
    if not args.pg:
        parser.error("--pg or PHOTOCHECK_TEST_POSTGRES_URL is needed")
    photos = [p for d in DEFAULT_DIRS for p in large_photos(d, 0.3, 30)]
    if args.mode == "upload":
        run_uploads(args, photos[: args.photos])
    else:
        run_index(args.pg, args.n, args.queries, args.sample, photos[: args.lock_uploads])
    return 0


if __name__ == "__main__":
    sys.exit(main())
