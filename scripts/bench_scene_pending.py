#!/usr/bin/env python3
"""How long an upload stays "scene check pending", at a stated load.

The same-scene check runs after the upload's answer (a background job). This prints,
per upload, the time from its answer until

- its record says the check is done (``photos.scene_checked``: ``GET /households/{id}``
  and the upload's later status stop saying "scene check pending"), and
- for uploads whose check found a same-scene / same-photo match, until the audit's
  stored findings include that match (an active finding holding both photos),

as p50 / p95 / max, with where the time went (queue wait vs running the check, from
the job threads' own counts in ``/health``; embedded default only).

Load: ``--clients`` concurrent clients, each uploading its share of the photos one
after the other as fast as answers come (a closed loop: the uploads/s reached is
printed), or with ``--rate R`` an open loop of R uploads/s spread over the clients.
Photos: the 8-10 MP photos and the building photos of ../shared/data (as
``bench_upload.py``), each for its own household; ``--rounds`` repeats them (a repeat
is a copy of an earlier upload: DUPLICATE_PHOTO at the answer, no scene check).

    python scripts/bench_scene_pending.py [--clients 8] [--rate R] [--policy FILE]
        [--tree DIR] [--pg URL]

``--tree DIR`` runs the server of another checkout (a baseline in the same run);
``--pg URL`` runs on PostgreSQL instead (a fresh schema): ``photocheck serve`` (which
checks its own uploads at once) plus one ``photocheck worker``; with ``--worker-only``
the serve process runs no jobs (``PHOTOCHECK_JOBS_IN_SERVE=false``): every check goes
through the queue to the worker, which decodes the original again.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import schema_url
from bench_upload import (
    DEFAULT_DIRS,
    free_port,
    gps_points,
    large_photos,
    multipart,
    process_cpu,
    village_login,
    wait_healthy,
)

from photocheck.cli import iter_image_paths

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"


class Watch:
    """Polls the database: when each photo's check is done, when its matches are in the
    audit's findings."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.checked: dict[int, float] = {}
        self.in_findings: dict[int, float] = {}
        self.matched: dict[int, set[int]] = {}  # photo -> other photos of its later matches
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._poll()
            except Exception as exc:  # a locked SQLite for a moment: look again
                print(f"  (watch: {type(exc).__name__})", file=sys.stderr)
            time.sleep(0.05)

    def _poll(self) -> None:
        with self.engine.connect() as con:
            now = time.perf_counter()
            checked: Any = con.execute(text("SELECT id FROM photos WHERE scene_checked"))
            for (pid,) in checked:
                self.checked.setdefault(int(pid), now)
            matches: Any = con.execute(
                text(
                    "SELECT photo_id, other_photo_id FROM photo_matches "
                    "WHERE relation IN ('same_scene', 'same_photo')"
                )
            )
            for pid, other in matches:
                self.matched.setdefault(int(pid), set()).add(int(other))
            if not self.matched:
                return
            rows = con.execute(text("SELECT photo_ids FROM audit_findings WHERE active"))
            groups = [set(json.loads(r[0]) if isinstance(r[0], str) else r[0]) for r in rows]
            now = time.perf_counter()
            for pid, others in self.matched.items():
                if pid not in self.in_findings and any(pid in g and others & g for g in groups):
                    self.in_findings[pid] = now

    def wait(self, ids: Sequence[int], timeout: float) -> None:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            checked = all(i in self.checked for i in ids)
            later = [p for p in ids if p in self.matched and p not in self.in_findings]
            if checked and not later:
                return
            time.sleep(0.1)


def upload_all(
    base: str,
    headers: dict[str, str],
    jobs: list[tuple[int, bytes, str]],
    clients: int,
    rate: float | None,
) -> tuple[float, dict[int, float], list[int]]:
    """Uploads/s reached, answer time per photo id, and the ids answered "pending"."""
    answered: dict[int, float] = {}
    pending: list[int] = []
    LATENCY.clear()
    start = time.perf_counter()
    lock = threading.Lock()

    def run(k: int) -> None:
        with httpx.Client(base_url=base, timeout=300, headers=headers) as c:
            for n, (household, body, ctype) in enumerate(jobs[k::clients]):
                if rate:  # open loop: upload i at i / rate seconds
                    due = start + (k + n * clients) / rate
                    time.sleep(max(0.0, due - time.perf_counter()))
                t = time.perf_counter()
                r = c.post(
                    f"/households/H{household}/photos",
                    content=body,
                    headers={"content-type": ctype},
                )
                LATENCY.append(time.perf_counter() - t)
                if r.status_code != 201:
                    msg = f"upload failed: {r.status_code} {r.text[:200]}"
                    raise RuntimeError(msg)
                body_json = r.json()
                with lock:
                    answered[body_json["photo_id"]] = time.perf_counter()
                    if body_json.get("scene_check"):
                        pending.append(body_json["photo_id"])

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(run, range(clients)))
    return len(jobs) / (time.perf_counter() - start), answered, pending


LATENCY: list[float] = []  # upload answer latency, seconds


def _line(label: str, values: list[float]) -> str:
    if not values:
        return f"{label}: none"
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(0.95 * (len(values) - 1) + 0.5))]
    return (
        f"{label} ({len(values)}): p50 {statistics.median(values):.2f} s, "
        f"p95 {p95:.2f} s, max {values[-1]:.2f} s"
    )


def run(args: argparse.Namespace, files: list[Path]) -> None:
    photos = [p.read_bytes() for p in files]
    points = gps_points(photos)
    jobs = [(i, *multipart(files[i].name, d)) for i, d in enumerate(photos)]
    tmp = Path(tempfile.mkdtemp(prefix="bench-scene-pending-"))
    env = {
        **os.environ,
        "PHOTOCHECK_DATA_DIR": str(tmp / "data"),
        "PHOTOCHECK_MAX_UPLOAD_MB": "40",
        "PHOTOCHECK_SECRET_KEY": "bench-secret-key-shared-by-the-processes",
    }
    tree = (args.tree or ROOT).resolve()  # `-m api.cli` imports from the working directory
    env["PYTHONPATH"] = str(tree)
    if args.policy:
        env["PHOTOCHECK_POLICY"] = str(args.policy.resolve())
    schema = None
    if args.pg:
        schema, url = schema_url(args.pg)
        env |= {"PHOTOCHECK_DATABASE_URL": url}
        if args.worker_only:  # checks only by `photocheck worker`, from the queue
            env["PHOTOCHECK_JOBS_IN_SERVE"] = "false"
        engine = create_engine(url)
    else:
        engine = create_engine(f"sqlite:///{tmp / 'data' / 'photocheck.sqlite3'}")
    exe = [sys.executable, "-m", "api.cli"]
    subprocess.run(
        [*exe, "user", "add", "bench-admin", "--county", "bench"],
        input=b"bench-password\n",
        env=env,
        cwd=tree,
        check=True,
        capture_output=True,
    )
    port = free_port()
    procs = [
        subprocess.Popen(
            [*exe, "serve", "--port", str(port)],
            env=env,
            cwd=tree,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    if args.pg:
        procs.append(
            subprocess.Popen(
                [*exe, "worker"],
                env=env,
                cwd=tree,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    try:
        # room for a start-up on a loaded machine (41-60+ s seen at load 25: migrations,
        # the models, the index)
        wait_healthy(f"http://127.0.0.1:{port}/health", procs[0], timeout_s=300)
        base = f"http://127.0.0.1:{port}/api/v1"
        headers = village_login(base, points)
        with httpx.Client(base_url=base, timeout=300, headers=headers) as c:
            for i in range(min(2, len(jobs))):  # warm-up: practice, stores nothing
                _, body, ctype = jobs[i]
                c.post(
                    f"/households/H{i}/photos",
                    content=body,
                    headers={"content-type": ctype},
                    params={"practice": "true"},
                ).raise_for_status()
        cpu = sum(process_cpu(p.pid) for p in procs)
        with Watch(engine) as watch:
            rate, answered, pending = upload_all(base, headers, jobs, args.clients, args.rate)
            last = max(answered.values())
            watch.wait(pending, timeout=600)
        cpu = (sum(process_cpu(p.pid) for p in procs) - cpu) * 1000 / len(jobs)
        health: dict[str, Any] = httpx.get(f"http://127.0.0.1:{port}/health").json()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        engine.dispose()
        if schema and args.pg:
            drop = create_engine(args.pg)
            with drop.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            drop.dispose()
    load = f"{args.rate:.2f}/s asked" if args.rate else "closed loop"
    where = "embedded default (SQLite)"
    if args.pg:
        where = (
            "PostgreSQL, serve (no jobs) + 1 worker"
            if args.worker_only
            else ("PostgreSQL, serve (its own checks) + 1 worker")
        )
    print(
        f"{where}, tree {args.tree or ROOT}, policy {args.policy or 'packaged'}: "
        f"{len(jobs)} uploads by {args.clients} clients ({load}): {rate:.2f} uploads/s; "
        f"server CPU {cpu:.0f} ms per upload"
    )
    print("  " + _line("upload answer latency", LATENCY))
    done = [watch.checked[p] - answered[p] for p in pending if p in watch.checked]
    print("  " + _line("scene check pending -> done after the answer", done))
    print(
        f"  last check done {max(watch.checked.get(p, last) for p in pending) - last:.2f} s "
        f"after the last answer; {len(pending) - len(done)} never done"
    )
    found = [watch.in_findings[p] - answered[p] for p in pending if p in watch.in_findings]
    print("  " + _line("uploads with a later match: answer -> in the audit findings", found))
    print(
        "  "
        + _line(
            "  ... and their check done",
            [watch.checked[p] - answered[p] for p in pending if p in watch.in_findings],
        )
    )
    for kind, s in (health.get("jobs") or {}).items():
        print(
            f"  job {kind}: {s['jobs']} run; queue wait p50 {s['wait_p50_s']:.2f} s, "
            f"p95 {s['wait_p95_s']:.2f} s; running p50 {s['run_p50_s']:.2f} s, "
            f"p95 {s['run_p95_s']:.2f} s; CPU p50 {s.get('cpu_p50_s', 0) * 1000:.0f} ms, "
            f"p95 {s.get('cpu_p95_s', 0) * 1000:.0f} ms"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rate", type=float, help="open loop: uploads per second")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--policy", type=Path, help="policy TOML (e.g. the XFeat matcher)")
    parser.add_argument("--tree", type=Path, help="run the server of this checkout")
    parser.add_argument("--pg", help="PostgreSQL URL (serve + photocheck worker)")
    parser.add_argument(
        "--worker-only", action="store_true", help="PostgreSQL: PHOTOCHECK_JOBS_IN_SERVE=false"
    )
    args = parser.parse_args()
    files = large_photos(DATA) + list(iter_image_paths(DEFAULT_DIRS))
    run(args, files * args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
