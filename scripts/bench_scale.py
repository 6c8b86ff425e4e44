#!/usr/bin/env python3
"""Scale-out costs, measured in one run: PostgreSQL with 1 and 2 worker processes, and
the cross-county duplicate index at county-to-national sizes.

``upload``: a fresh schema in ``PHOTOCHECK_TEST_POSTGRES_URL`` (or ``--pg``), local
blobs, N ``photocheck serve`` processes (each on its own port, clients spread over
them, as a load balancer would) plus one ``photocheck worker`` (the job queue; the
serve processes run no jobs here, so its CPU shows apart). Prints uploads/s and CPU
ms per upload of each component from /proc: the serve processes, their PostgreSQL
backends (found by ``application_name``), the job worker.

``index``: the cross-county duplicate index (``DuplicateIndex``) with N synthetic PDQ
hashes: resident memory (VmRSS growth), build time, median / p99 same-photo query
(8 dihedral variants, the policy's radius), and the time a restarting worker needs
to be ready = reading N rows from PostgreSQL (rows/s measured on ``--pg-rows`` rows
of a real ``photos`` table in this run) + the measured build.

    python scripts/bench_scale.py upload [--workers 1 2] [--clients 4] [--rounds 1]
    python scripts/bench_scale.py index [--n 1000000 5000000] [--pg-rows 200000]
"""

from __future__ import annotations

import argparse
import os
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
    wait_healthy,
)

APP = "photocheck_bench"


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


# --- upload: PostgreSQL, 1 and 2 worker processes ------------------------------------


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


def run_upload(base: str, workers: int, clients: int, photos: list[Path], rounds: int) -> None:
    schema, url = schema_url(base)
    data_dir = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    env = {
        **os.environ,
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
    job = subprocess.Popen(
        [*exe, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for p, proc in zip(ports, procs, strict=True):
            wait_healthy(f"http://127.0.0.1:{p}/health", proc)
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
        todo = bodies[len(ports) :]
        pg = backend_pids(base, schema)
        before = {
            "serve": sum(process_cpu(p.pid) for p in procs),
            "postgres": sum(process_cpu(p) for p in pg),
            "jobs": process_cpu(job.pid),
        }
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
        time.sleep(1)  # the audit refresh job (3 s debounce) is counted below when done
        pg = backend_pids(base, schema)  # pools may have opened more backends meanwhile
        after = {
            "serve": sum(process_cpu(p.pid) for p in procs),
            "postgres": sum(process_cpu(p) for p in pg),
            "jobs": process_cpu(job.pid),
        }
        n = len(todo)
        print(
            f"PostgreSQL + local blobs, {workers} serve process(es), {clients} clients, "
            f"{n} uploads: {n / wall:.2f} uploads/s"
        )
        for name in before:
            ms = (after[name] - before[name]) * 1000 / n
            print(f"  CPU per upload, {name:8s}: {ms:7.1f} ms")
        print(
            "  (postgres: this schema's backends only; WAL writer/checkpointer are shared "
            "with other users of the cluster and not counted)"
        )
    finally:
        for proc in [*procs, job]:
            proc.terminate()
        for proc in [*procs, job]:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        engine = create_engine(base)
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


# --- index: the cross-county duplicate index at scale -----------------------------------


def synthetic_entries(n: int, seed: int = 7) -> Iterator[object]:
    from photocheck.store.dupindex import DupEntry

    rng = np.random.default_rng(seed)
    for start in range(0, n, 50_000):
        k = min(50_000, n - start)
        pdq = rng.integers(0, 256, size=(k, 32), dtype=np.uint8)
        county = rng.integers(1, 2001, size=k)
        for i in range(k):
            yield DupEntry(
                photo_id=start + i + 1,
                household_id=start + i + 1,
                county_id=int(county[i]),
                site_code=None,
                pdq=pdq[i].tobytes(),
                embedding=None,
                lat=None,
                lon=None,
                sha256="",
                pixel_sha256=None,
            )


def pg_rows_per_s(base: str, rows: int) -> float:
    """Rows per second of the start-up read (``dup_entries``) from a real photos table."""
    from photocheck.store import Database
    from photocheck.store.repo import dup_entries

    schema, url = schema_url(base)
    try:
        from api.migrate import upgrade

        db = Database(url)
        upgrade(db.engine)
        rng = np.random.default_rng(3)
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO counties (id, name) VALUES (1, 'c')"))
            conn.execute(text("INSERT INTO towns (id, county_id, name) VALUES (1, 1, 't')"))
            conn.execute(text("INSERT INTO villages (id, town_id, name) VALUES (1, 1, 'v')"))
            conn.execute(text("SELECT setval('users_id_seq', 1, false)"))
        hashes = rng.integers(0, 256, size=(rows, 32), dtype=np.uint8)
        print(f"  filling {rows:,} photo rows for the start-up read ...", file=sys.stderr)
        with db.engine.begin() as conn:
            user = required_columns(conn, "users")
            values = {c: filler(c, t, 0, "") for c, t in user.items()}
            values.update(username="bench", county_id=1, role="county")
            conn.execute(
                text(
                    f"INSERT INTO users ({', '.join(values)}) "
                    f"VALUES ({', '.join(':' + c for c in values)})"
                ),
                values,
            )
            photo = required_columns(conn, "photos")
            photo.pop("household_id", None)
            photo.pop("id", None)
            photo["pdq"] = "text"
            raw: Any = conn.connection.driver_connection
            with raw.cursor() as cur:
                cur.execute(
                    "INSERT INTO households (county_id, village_id, household_code, head_name, "
                    "category) SELECT 1, 1, 'H' || g, 'h', 'appraised' "
                    "FROM generate_series(1, %s) g",
                    (rows,),
                )
                cols = list(photo)
                with cur.copy(f"COPY photos (household_id, {', '.join(cols)}) FROM STDIN") as cp:
                    for i in range(rows):
                        pdq = hashes[i].tobytes().hex()
                        cp.write_row((i + 1, *(filler(c, photo[c], i, pdq) for c in cols)))
        started = time.perf_counter()
        with db.session() as session:
            count = sum(1 for _ in dup_entries(session))
        rate = count / (time.perf_counter() - started)
        db.dispose()
        return rate
    finally:
        engine = create_engine(base)
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def required_columns(conn: object, table: str) -> dict[str, str]:
    """NOT NULL columns without a server default: name -> data type."""
    rows = conn.execute(  # type: ignore[attr-defined]
        text(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = :t AND table_schema = current_schema() "
            "AND is_nullable = 'NO' AND column_default IS NULL"
        ),
        {"t": table},
    )
    return dict(rows.all())


FILLER = {
    "integer": 1,
    "bigint": 1,
    "boolean": False,
    "json": "{}",
    "jsonb": "{}",
    "double precision": 0.0,
}


def filler(name: str, dtype: str, i: int, pdq: str) -> object:
    if name == "pdq":
        return pdq
    if name in ("sha256", "pixel_sha256"):
        return f"{i:064x}"
    if name == "reasons":
        return "[]"
    if dtype.startswith("timestamp"):
        return "2026-01-01T00:00:00+00"
    return FILLER.get(dtype, f"x{i}")


def run_index(sizes: list[int], queries: int, pg_rate: float | None) -> None:
    from photocheck import default_policy
    from photocheck.store.dupindex import DuplicateIndex

    radius = default_policy().similarity.same_photo_max_distance
    for n in sizes:
        rss0 = rss_bytes()
        index = DuplicateIndex(spill_dir=Path(tempfile.mkdtemp(prefix="bench-idx-")))
        started = time.perf_counter()
        index.build(synthetic_entries(n))  # type: ignore[arg-type]
        build_s = time.perf_counter() - started
        rss = rss_bytes() - rss0
        rng = np.random.default_rng(5)
        times = []
        for _ in range(queries):
            variants = [rng.integers(0, 256, 32, dtype=np.uint8).tobytes() for _ in range(8)]
            t = time.perf_counter()
            index.same_photo(pdq_variants=variants, max_distance=radius)
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
        ready = f"{n / pg_rate + build_s:.1f} s" if pg_rate else "n/a (no --pg)"
        print(
            f"index {n:>11,} PDQ: resident +{rss / 1e6:7.1f} MB ({rss / n:.1f} B/photo), "
            f"build {build_s:6.1f} s, query median {statistics.median(times):7.2f} ms "
            f"p99 {p99:7.2f} ms; restart ready ~{ready} "
            f"(read at {pg_rate or 0:,.0f} rows/s + build)"
        )
        del index


def run_rows(photos: list[Path]) -> None:
    """What one stored photo costs in PostgreSQL: scene features, embedding, report."""
    import json

    from photocheck import ContentModel, default_policy
    from photocheck.pipeline import check_photo
    from photocheck.store.dupindex import embedding_to_bytes
    from photocheck.store.scenes import OrbSceneMatcher

    policy, model = default_policy(), ContentModel()
    scene = OrbSceneMatcher(policy, None)  # type: ignore[arg-type]  # no blobs needed
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
        f"scene features {statistics.mean(feats) / 1e3:.1f} kB, embedding "
        f"{statistics.mean(embs) / 1e3:.1f} kB, report JSON {statistics.mean(reports) / 1e3:.1f} kB"
    )


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
    p = sub.add_parser("index")
    p.add_argument("--pg", default=pg_default)
    p.add_argument("--n", type=int, nargs="+", default=[1_000_000, 5_000_000])
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--pg-rows", type=int, default=200_000)
    p = sub.add_parser("rows")
    p.add_argument("--photos", type=int, default=12)
    args = parser.parse_args()
    if args.mode == "rows":
        run_rows([p for d in DEFAULT_DIRS for p in large_photos(d, 0.3, 30)][: args.photos])
        return 0
    if args.mode == "upload":
        if not args.pg:
            parser.error("--pg or PHOTOCHECK_TEST_POSTGRES_URL is needed")
        photos = [p for d in DEFAULT_DIRS for p in large_photos(d, 0.3, 30)][: args.photos]
        for w in args.workers:
            run_upload(args.pg, w, args.clients, photos, args.rounds)
    else:
        rate = pg_rows_per_s(args.pg, args.pg_rows) if args.pg else None
        if rate:
            print(f"start-up read (dup_entries) from PostgreSQL: {rate:,.0f} rows/s")
        run_index(args.n, args.queries, rate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
