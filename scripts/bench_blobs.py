"""Blob-store cost per photo: local folder vs S3 (SeaweedFS), in one run.

    PYTHONPATH=. .venv/bin/python scripts/bench_blobs.py [--n 30] [--mb 3]

Stages and commits ``n`` distinct objects of ``mb`` MB through each store the way an
upload does (``open_writer`` -> ``commit``: local = fsync + SHA-256 check + link;
S3 = a PUT with ChecksumSHA256 and If-None-Match), then reads each back whole and by
a 64 kB range. Prints wall time and this process's CPU per operation, SeaweedFS's own
CPU per PUT, and the S3 / local ratios. SeaweedFS is started on free ports for the
run (``tests/s3.py``) and stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from photocheck.store import BlobConfig, BlobStore
from tests.s3 import ACCESS_KEY, SECRET_KEY, SeaweedFS


def _proc_cpu(pid: int) -> float:
    """utime + stime of a process (and its reaped children), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(f) for f in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def _measure(fn: Callable[[], object], n: int, server_pid: int | None) -> dict[str, float]:
    walls = []
    cpu0, srv0 = time.process_time(), _proc_cpu(server_pid) if server_pid else 0.0
    for _ in range(n):
        t = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t)
    out = {
        "median_ms": statistics.median(walls) * 1000,
        "cpu_ms": (time.process_time() - cpu0) / n * 1000,
    }
    if server_pid:
        out["server_cpu_ms"] = (_proc_cpu(server_pid) - srv0) / n * 1000
    return out


def _bench(store: BlobStore, payloads: list[bytes], server_pid: int | None) -> dict:
    todo = iter(payloads)
    rels: list[str] = []

    def put() -> None:
        data = next(todo)
        writer = store.open_writer(len(data))
        writer.write(data)
        rels.append(store.commit(writer.finish()))

    results = {"put": _measure(put, len(payloads), server_pid)}
    reads = iter(list(rels))
    results["get"] = _measure(lambda: store.read(next(reads)), len(rels), server_pid)
    ranges = iter(list(rels))
    results["range_64k"] = _measure(
        lambda: b"".join(store.iter_range(next(ranges), 1 << 20, (1 << 20) + 65536)),
        len(rels),
        server_pid,
    )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=30, help="objects per store (bounded)")
    parser.add_argument("--mb", type=float, default=3.0, help="object size in MB")
    args = parser.parse_args()
    n = max(1, min(args.n, 500))
    size = int(args.mb * 1_000_000)
    with tempfile.TemporaryDirectory(prefix="bench-blobs-") as tmp:
        root = Path(tmp)
        weed = SeaweedFS(root / "weed")
        weed.start()
        try:
            bucket = weed.new_bucket()
            local = BlobConfig(root / "local").store("blobs")
            s3 = BlobConfig(
                root / "s3",
                bucket.url,
                s3_endpoint=weed.endpoint,
                s3_access_key=ACCESS_KEY,
                s3_secret_key=SECRET_KEY,
            ).store("blobs")
            s3.put_bytes(os.urandom(1000))  # warm the connection pool and volumes
            assert weed.process is not None
            pid = weed.process.pid
            results = {
                "local": _bench(local, [os.urandom(size) for _ in range(n)], None),
                "s3": _bench(s3, [os.urandom(size) for _ in range(n)], pid),
            }
        finally:
            weed.stop()
    print(f"{n} objects of {size / 1e6:g} MB; median wall ms, CPU ms per operation")
    print(f"{'op':<10} {'local':>8} {'s3':>8} {'ratio':>6}   cpu local / s3 / SeaweedFS")
    for op in ("put", "get", "range_64k"):
        lo, s = results["local"][op], results["s3"][op]
        ratio = s["median_ms"] / lo["median_ms"]
        print(
            f"{op:<10} {lo['median_ms']:8.2f} {s['median_ms']:8.2f} {ratio:6.2f}   "
            f"{lo['cpu_ms']:.2f} / {s['cpu_ms']:.2f} / {s['server_cpu_ms']:.2f}"
        )
    extra = results["s3"]["put"]["median_ms"] - results["local"]["put"]["median_ms"]
    cpu = (
        results["s3"]["put"]["cpu_ms"]
        + results["s3"]["put"]["server_cpu_ms"]
        - results["local"]["put"]["cpu_ms"]
    )
    print(f"S3 upload overhead per photo: {extra:+.1f} ms wall, {cpu:+.1f} ms CPU (client+server)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
