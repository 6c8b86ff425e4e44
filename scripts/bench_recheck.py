#!/usr/bin/env python3
"""The look-back re-check's throughput vs the bare library, measured in one run.

Data: the photos of a folder of ``../shared/data`` (default ``buildings/``: 41 real
photos, 30 KB - 2.4 MB), repeated to ``--uploads`` uploads (2,000), each under a new
household id (R00001...) in a fresh data folder (SQLite, local blobs). The rows are
made directly (the upload's verdict from one check of each distinct file under the
packaged policy): setting up is not what is measured. Repeated files share one blob
(content-addressed), but every upload is read and decoded again by the re-check.

1. Library: ``check_file`` of the same files in the same order, on ``--workers``
   threads (the re-check's pool size) -- photocheck's own check, nothing else. Half of
   the uploads before the re-check and half after, so a change of the machine's load
   during the run weighs on both.
2. Re-check: ``Recheck.start`` of the county under a stricter policy (BLURRY
   threshold 0.76) on the embedded job thread (``ThreadJobs``), until every record is
   written: per batch one query for the photos, the originals read from the blob
   store and checked (decoded once, ``check_photo``), one statement for the verdicts.

Both run on threads niced like the service's job thread (the re-check is background
work), so other load on the machine weighs on both alike. Prints photos/s of each and
the ratio (target >= 0.80).

    python scripts/bench_recheck.py [--uploads 2000] [--workers 2] [--batch 32] [FOLDER]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from api.migrate import upgrade
from photocheck import ContentModel, check_file, check_photo, default_policy
from photocheck.cli import iter_image_paths
from photocheck.policy import load_policy
from photocheck.recheck.runs import Recheck
from photocheck.recheck.tables import RecheckRun
from photocheck.store import (
    County,
    Database,
    Household,
    LocalBlobStore,
    Photo,
    Role,
    Town,
    User,
    Village,
)
from photocheck.store.jobs import lower_priority

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def _stricter_policy(folder: Path) -> Path:
    text = (ROOT / "photocheck/default_policy.toml").read_text(encoding="utf-8")
    text = text.replace('version = "', 'version = "bench-', 1)
    lines = [
        "blur_min_sharpness = 0.76" if line.startswith("blur_min_sharpness") else line
        for line in text.splitlines()
    ]
    path = folder / "policy.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _seed(db: Database, blobs: LocalBlobStore, files: list[Path], uploads: int) -> int:
    """A county, one village, ``uploads`` households each with one stored photo."""
    policy, model = default_policy(), ContentModel()
    stored = {}
    for path in files:
        data = path.read_bytes()
        report = check_photo(data, policy=policy, model=model)
        fp = report.fingerprint
        stored[path] = (blobs.put_bytes(data), report, len(data), fp)
    with db.write() as s:
        county = County(name="基准县")
        s.add(county)
        s.flush()
        town = Town(county_id=county.id, name="基准镇")
        s.add(town)
        s.flush()
        village = Village(town_id=town.id, name="基准村")
        s.add(village)
        s.flush()
        user = User(username="bench", password_hash="-", role=Role.COUNTY, county_id=county.id)
        s.add(user)
        s.flush()
        households = [
            Household(county_id=county.id, household_code=f"R{i:05d}", head_name=f"户{i}",
                      village_id=village.id, category="appraised")
            for i in range(1, uploads + 1)
        ]  # fmt: skip
        s.add_all(households)
        s.flush()
        for i, household in enumerate(households):
            rel, report, size, fp = stored[files[i % len(files)]]
            s.add(
                Photo(
                    household_id=household.id, sha256=fp.sha256, size=size, format="JPEG",
                    blob_path=rel, export_name=f"{household.household_code}.jpg",
                    verdict=report.verdict.value, reasons=[r.to_json() for r in report.reasons],
                    metrics={}, pdq=fp.pdq.hex() if fp.pdq else None,
                    pixel_sha256=fp.pixel_sha256, uploaded_by=user.id,
                    policy_version=report.policy_version, model_version=report.model_version,
                    is_current=True,
                )
            )  # fmt: skip
        return user.id


def _niced(fn: Callable[[], T]) -> T:
    """Run ``fn`` on a thread niced like the service's job thread; its result."""
    out: list[T] = []

    def run() -> None:
        lower_priority()
        out.append(fn())

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return out[0]


def _library(paths: list[Path], workers: int) -> float:
    """Seconds to check ``paths`` with ``check_file`` on ``workers`` threads."""
    policy, model = load_policy(_POLICY[0]), ContentModel()

    def run() -> float:
        started = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            for _ in pool.map(lambda p: check_file(p, policy=policy, model=model), paths):
                pass
        return time.perf_counter() - started

    return _niced(run)


_POLICY: list[Path] = []


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", nargs="?", default=str(ROOT.parent / "shared/data/buildings"))
    ap.add_argument("--uploads", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    files = sorted(iter_image_paths([Path(args.folder)]))
    if not files:
        print(f"no photos in {args.folder}", file=sys.stderr)
        return 2
    order = [files[i % len(files)] for i in range(args.uploads)]
    with tempfile.TemporaryDirectory(prefix="bench-recheck-") as tmp:
        folder = Path(tmp)
        _POLICY.append(_stricter_policy(folder))
        db = Database(f"sqlite:///{folder / 'photocheck.sqlite3'}")
        upgrade(db.engine)
        blobs = LocalBlobStore(folder / "blobs")
        t0 = time.perf_counter()
        user_id = _seed(db, blobs, files, args.uploads)
        print(f"{len(files)} photos of {args.folder} as {args.uploads} uploads "
              f"(new household ids), seeded in {time.perf_counter() - t0:.1f} s")  # fmt: skip
        half = len(order) // 2
        lib_s = _library(order[:half], args.workers)
        recheck = Recheck(db, blobs, load_policy(_POLICY[0]), ContentModel(),
                          batch_size=args.batch, workers=args.workers)  # fmt: skip
        with db.session() as s:
            county_id = s.get(User, user_id).county_id  # type: ignore[union-attr]
        started = time.perf_counter()
        run = recheck.start(county_id, user_id)
        recheck.drain()
        re_s = time.perf_counter() - started
        lib_s += _library(order[half:], args.workers)
        with db.session() as s:
            done = s.get(RecheckRun, run.id)
            view = recheck.view(s, done).to_json()  # type: ignore[arg-type]
        recheck.close()
        db.dispose()
    assert view["state"] == "done" and view["done"] == args.uploads, view
    lib_rate, re_rate = args.uploads / lib_s, args.uploads / re_s
    print(
        f"library  check_file, {args.workers} threads: {lib_rate:6.1f} photos/s "
        f"({lib_s:.1f} s for {args.uploads})"
    )
    print(
        f"re-check {args.batch} photos/job, {args.workers} threads: {re_rate:6.1f} photos/s "
        f"({re_s:.1f} s; changes {view['changes']})"
    )
    print(f"ratio re-check / library: {re_rate / lib_rate:.2f} (target >= 0.80)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
