#!/usr/bin/env python3
"""Upload throughput over real HTTP vs the bare library, measured in one run.

1. Library: ``check_photo`` on the photos in-process (threads = cores, and 1 thread;
   the better of the two is the baseline).
2. Service: ``photocheck serve`` in a subprocess on a loopback port with a fresh data
   folder (SQLite); 8 concurrent clients upload the same photos, each to its own
   household, through a village account (full path: stream, check, duplicates,
   blob fsync, commit).

Prints photos/s for both and the ratio (target >= 0.80). Timings are noisy on a
shared machine; only the ratio within one run means something.

    python scripts/bench_upload.py [--clients 8] [--rounds 2] [PHOTO_DIR...]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from photocheck import ContentModel, check_photo, default_policy
from photocheck.cli import iter_image_paths

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIRS = [ROOT.parent / "shared" / "data" / "buildings"]


def library_rate(photos: list[bytes], threads: int) -> float:
    policy, model = default_policy(), ContentModel()
    for data in photos[:2]:
        check_photo(data, policy=policy, model=model)  # warm-up
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda d: check_photo(d, policy=policy, model=model), photos))
    return len(photos) / (time.perf_counter() - started)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PHOTOCHECK_DATA_DIR": str(data_dir), "PHOTOCHECK_MAX_UPLOAD_MB": "40"}
    exe = [sys.executable, "-m", "photocheck.cli"]
    subprocess.run(
        [*exe, "user", "add", "bench-admin", "--county", "bench"],
        input=b"bench-password\n",
        env=env,
        check=True,
    )
    proc = subprocess.Popen(
        [*exe, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    msg = "server did not start"
    raise RuntimeError(msg)


def village_login(base: str, households: int) -> dict[str, str]:
    with httpx.Client(base_url=base, timeout=60) as c:
        r = c.post("/auth/token", data={"username": "bench-admin", "password": "bench-password"})
        admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
        rows = "".join(f"H{i},户主{i},镇,村,appraised,,,\n" for i in range(households))
        csv = "household_id,head_name,town,village,category,site_id,lat,lon\n" + rows
        r = c.post(
            "/households/import",
            content=csv.encode(),
            headers={**admin, "content-type": "text/csv"},
        )
        r.raise_for_status()
        account = r.json()["accounts"][0]
        r = c.post(
            "/auth/token", data={"username": account["username"], "password": account["password"]}
        )
        first = {"Authorization": f"Bearer {r.json()['access_token']}"}
        c.post(
            "/auth/change-password",
            json={"old_password": account["password"], "new_password": "village-pass-1"},
            headers=first,
        ).raise_for_status()
        r = c.post(
            "/auth/token", data={"username": account["username"], "password": "village-pass-1"}
        )
        return {"Authorization": f"Bearer {r.json()['access_token']}"}


def http_rate(
    base: str, headers: dict[str, str], jobs: list[tuple[int, str, bytes]], clients: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []

    def run(chunk: list[tuple[int, str, bytes]]) -> None:
        with httpx.Client(base_url=base, timeout=300, headers=headers) as c:
            for household, name, data in chunk:
                t = time.perf_counter()
                r = c.post(f"/households/H{household}/photos", files={"file": (name, data)})
                latencies.append(time.perf_counter() - t)
                if r.status_code != 201:
                    msg = f"upload failed: {r.status_code} {r.text[:200]}"
                    raise RuntimeError(msg)

    chunks = [jobs[i::clients] for i in range(clients)]
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(run, chunks))
    return len(jobs) / (time.perf_counter() - started), latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="*", type=Path, default=DEFAULT_DIRS)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2, help="passes over the photos")
    args = parser.parse_args()

    files = list(iter_image_paths(args.dirs))
    photos = [p.read_bytes() for p in files] * args.rounds
    if not photos:
        print("no photos found", file=sys.stderr)
        return 2
    cores = os.cpu_count() or 2
    lib_n = library_rate(photos, cores)
    lib_1 = library_rate(photos, 1)
    baseline = max(lib_n, lib_1)
    print(f"photos: {len(files)} files x {args.rounds} rounds = {len(photos)} uploads")
    print(f"library check_photo: {lib_n:.2f}/s ({cores} threads), {lib_1:.2f}/s (1 thread)")

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        proc = start_server(Path(tmp) / "data", port)
        try:
            base = f"http://127.0.0.1:{port}/api/v1"
            headers = village_login(base, len(photos) + args.clients)
            # warm-up: one upload per client on households outside the measured set
            warm = [(len(photos) + i, files[0].name, photos[0]) for i in range(args.clients)]
            http_rate(base, headers, warm, args.clients)
            jobs = [(i, files[i % len(files)].name, data) for i, data in enumerate(photos)]
            rate, lat = http_rate(base, headers, jobs, args.clients)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    lat.sort()
    p95 = lat[int(0.95 * (len(lat) - 1))]
    print(
        f"HTTP upload, {args.clients} clients: {rate:.2f}/s "
        f"(latency p50 {statistics.median(lat) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms)"
    )
    ratio = rate / baseline
    print(f"ratio HTTP / library: {ratio:.2f} (target >= 0.80) {'OK' if ratio >= 0.8 else 'BELOW'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
