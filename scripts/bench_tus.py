"""Cost of a resumable-upload PATCH by where the partial bytes live, in one run.

    PYTHONPATH=. .venv/bin/python scripts/bench_tus.py [--files 3] [--mb 3] [--chunk-kb 256]
        [--pg postgresql+psycopg://...]   (also: the PostgreSQL upload lock)

Sends ``files`` uploads of ``mb`` MB in ``chunk-kb`` PATCHes through each partial
store the way the tus route does (hold the upload, read its offset, append, make it
durable, let go), then a HEAD (hold + offset) and the completion (assemble the file in
staging, hashed). Stores: the local folder (fsync, flock), S3 on SeaweedFS with the
``flock`` lock (SQLite deployments), and S3 with the PostgreSQL advisory lock (scale
out, with ``--pg``). Prints the median wall time per PATCH, HEAD and completion, and
the ratios to the local folder. SeaweedFS is started on free ports and stopped.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from photocheck.store.resumable import PartialStore, PartialUploads
from photocheck.store.s3resumable import S3PartialUploads
from photocheck.store.upload_locks import FileUploadLocks, PgUploadLocks, UploadLocks
from tests.s3 import SeaweedFS

EXPIRY = dt.timedelta(hours=1)


def _run(store: PartialStore, files: list[bytes], chunk: int, staging: Path) -> dict[str, float]:
    patches, heads, completes = [], [], []
    for data in files:
        upload = store.create(1, len(data), {"household_id": "B1"}, {})
        for start in range(0, len(data), chunk):
            t = time.perf_counter()
            with store.writing(upload.id) as writer:
                assert writer.offset == start
                writer.write(data[start : start + chunk])
                writer.sync()
            patches.append(time.perf_counter() - t)
            t = time.perf_counter()
            with store.writing(upload.id) as writer:
                assert writer.offset == min(start + chunk, len(data))
            heads.append(time.perf_counter() - t)
        t = time.perf_counter()
        with store.writing(upload.id) as writer:
            pending = writer.assemble(staging)
            writer.finish({"photo_id": 1})
        completes.append(time.perf_counter() - t)
        assert pending.read() == data
        pending.discard()
    ms = 1000.0
    return {
        "patch_ms": statistics.median(patches) * ms,
        "head_ms": statistics.median(heads) * ms,
        "complete_ms": statistics.median(completes) * ms,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=3)
    parser.add_argument("--mb", type=float, default=3.0)
    parser.add_argument("--chunk-kb", type=int, default=256)
    parser.add_argument("--pg", default=os.environ.get("PHOTOCHECK_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    files = [os.urandom(int(args.mb * 1024 * 1024)) for _ in range(args.files)]
    chunk = args.chunk_kb * 1024
    with tempfile.TemporaryDirectory(prefix="bench-tus-") as tmp:
        root = Path(tmp)
        weed = SeaweedFS(root / "weed")
        weed.start()
        try:
            bucket = weed.new_bucket()
            results = {
                "local": _run(
                    PartialUploads(root / "partial", EXPIRY), files, chunk, root / "staging"
                )
            }
            lock_kinds: dict[str, UploadLocks] = {"s3+flock": FileUploadLocks(root / "locks")}
            if args.pg:
                lock_kinds["s3+pg lock"] = PgUploadLocks(args.pg)
            for name, locks in lock_kinds.items():
                store = S3PartialUploads(
                    bucket.client, bucket.name, f"bench/{name}", locks, EXPIRY, root / "staging"
                )
                results[name] = _run(store, files, chunk, root / "staging")
                locks.close()
        finally:
            weed.stop()
    base = results["local"]
    print(f"{args.files} files of {args.mb:g} MB in {args.chunk_kb} kB PATCHes (median ms)")
    print(f"{'store':<12} {'PATCH':>8} {'HEAD':>8} {'complete':>9}   ratio to local (PATCH)")
    for name, r in results.items():
        print(
            f"{name:<12} {r['patch_ms']:8.1f} {r['head_ms']:8.1f} {r['complete_ms']:9.1f}"
            f"   x{r['patch_ms'] / base['patch_ms']:.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
