#!/usr/bin/env python3
"""Uploads during a login flood (issue 9 item 7), measured in one run.

``photocheck serve`` (SQLite, fresh data folder) in a subprocess; a village account
makes practice uploads of one real photo, first alone (the baseline), then while 200
logins with made-up usernames arrive 40 at a time. Each flood client binds its own
loopback address (127.0.1.x; Linux routes all of 127/8 to lo), as a distributed flood
would, so the per-address rate does not hide the hashing bound; ``--one-address``
sends them all from 127.0.0.1 instead.

Printed: upload p50/p95 alone and under the flood (and their ratio), the server's
RSS before, after and at its peak (VmHWM), the login answers by status, the flood's
duration. ``--tree DIR`` runs the server from another checkout (e.g. the code before
this change) for a before/after comparison; the clients are always this script.

    python scripts/bench_login_flood.py [--logins 200] [--concurrency 40] [--tree DIR]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PHOTO = ROOT.parent / "shared" / "data" / "buildings" / "strecha_herz_jesu" / "herz_jesu_0000.jpg"


FAILED: list[str] = []  # uploads that did not answer 201


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(tree: Path, data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(tree), "PHOTOCHECK_DATA_DIR": str(data_dir)}
    exe = [sys.executable, "-m", "api.cli"]
    subprocess.run(
        [*exe, "user", "add", "bench-admin", "--role", "county", "--county", "bench"],
        input=b"bench-password\n",
        env=env,
        check=True,
        cwd=tree,
    )
    proc = subprocess.Popen(
        [*exe, "serve", "--port", str(port)],
        env=env,
        cwd=tree,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.3)
    proc.kill()
    msg = "server did not start"
    raise RuntimeError(msg)


def village(base: str) -> dict[str, str]:
    with httpx.Client(base_url=base, timeout=120) as c:
        r = c.post("/auth/token", data={"username": "bench-admin", "password": "bench-password"})
        admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
        csv = "household_id,head_name,town,village,category,site_id,lat,lon\n"
        csv += "H1,户主,镇,村,appraised,,,\n"
        r = c.post(
            "/households/import",
            content=csv.encode(),
            headers={**admin, "content-type": "text/csv"},
        )
        r.raise_for_status()
        acc = r.json()["accounts"][0]
        r = c.post("/auth/token", data={"username": acc["username"], "password": acc["password"]})
        first = {"Authorization": f"Bearer {r.json()['access_token']}"}
        c.post(
            "/auth/change-password",
            json={"old_password": acc["password"], "new_password": "village-pass-1"},
            headers=first,
        ).raise_for_status()
        r = c.post("/auth/token", data={"username": acc["username"], "password": "village-pass-1"})
        return {"Authorization": f"Bearer {r.json()['access_token']}"}


def uploads(base: str, headers: dict[str, str], stop: threading.Event, limit: int) -> list[float]:
    """Practice uploads one after another until ``stop`` (or ``limit``); latencies (s)."""
    data = PHOTO.read_bytes()
    out: list[float] = []
    with httpx.Client(base_url=base, timeout=120) as c:
        while not stop.is_set() and len(out) < limit:
            t = time.perf_counter()
            try:
                r = c.post(
                    "/households/H1/photos",
                    params={"practice": "true"},
                    files={"file": ("h.jpg", data, "image/jpeg")},
                    headers=headers,
                )
                failed = "" if r.status_code == 201 else f"{r.status_code} {r.text[:200]}"
            except httpx.TransportError as exc:
                failed = repr(exc)
            if failed:
                print(f"upload failed: {failed}", file=sys.stderr)
                FAILED.append(failed)
            out.append(time.perf_counter() - t)
    return out


def flood(base: str, logins: int, concurrency: int, one_address: bool) -> tuple[Counter, float]:
    def client(i: int) -> Counter:
        address = "127.0.0.1" if one_address else f"127.0.1.{i + 1}"
        counts: Counter = Counter()
        transport = httpx.HTTPTransport(local_address=address)
        with httpx.Client(base_url=base, timeout=120, transport=transport) as c:
            for _ in range(logins // concurrency):
                name = f"nobody-{uuid.uuid4().hex[:8]}"
                try:
                    r = c.post("/auth/token", data={"username": name, "password": "guess-123"})
                    counts[str(r.status_code)] += 1
                except httpx.TransportError as exc:  # the old server drops connections
                    counts[type(exc).__name__] += 1
        return counts

    t = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        total = sum(pool.map(client, range(concurrency)), Counter())
    return total, time.perf_counter() - t


def p95(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=20)[-1] if len(xs) >= 2 else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--logins", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=40)
    ap.add_argument("--baseline", type=int, default=20, help="uploads without a flood")
    ap.add_argument("--tree", type=Path, default=ROOT)
    ap.add_argument("--one-address", action="store_true")
    args = ap.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}/api/v1"
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_server(args.tree.resolve(), Path(tmp) / "data", port)
        try:
            headers = village(base)
            never = threading.Event()
            alone = uploads(base, headers, never, args.baseline)
            rss_before = rss_mb(proc.pid)
            stop = threading.Event()
            during: list[float] = []
            runner = threading.Thread(
                target=lambda: during.extend(uploads(base, headers, stop, 10_000))
            )
            runner.start()
            answers, seconds = flood(base, args.logins, args.concurrency, args.one_address)
            stop.set()
            runner.join()
            rss_after, rss_peak = rss_mb(proc.pid), rss_mb(proc.pid, "VmHWM")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"server tree: {args.tree}")
    print(f"uploads alone:       n={len(alone)} p50={statistics.median(alone):.3f} s "
          f"p95={p95(alone):.3f} s")  # fmt: skip
    print(f"uploads under flood: n={len(during)} p50={statistics.median(during):.3f} s "
          f"p95={p95(during):.3f} s (ratio p95 {p95(during) / p95(alone):.1f}x)")  # fmt: skip
    print(f"flood: {args.logins} logins, {args.concurrency} at a time, {seconds:.1f} s, "
          f"answers {dict(sorted(answers.items()))}")  # fmt: skip
    print(f"failed uploads: {len(FAILED)}")
    print(f"server RSS: before {rss_before:.0f} MB, after {rss_after:.0f} MB, "
          f"peak {rss_peak:.0f} MB")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
