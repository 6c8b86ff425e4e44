#!/usr/bin/env python3
"""`photocheck dedup` over N photos: photos/s at 200 and at 2,000 files, and its growth.

../shared/data holds ~250 decodable photos, so both sizes are made of its real photos
**repeated under new names** (symlinks ``r{round}_{name}`` in a temporary folder; the
first 200 are 200 different photos, the 2,000 are each photo about 8 times). Every file
is read, decoded, fingerprinted and featured on its own (no cache by content), so the
per-photo work is real; a repeat is an exact copy of another file, which the engine
pairs by its digest (``same_photo``) without scene verification, and which takes
places in the other photos' descriptor votes. The script prints, per size: photos/s
(wall, ``--workers`` threads), the per-photo stage (decode + fingerprint + features)
and the pair stage (candidates + verification) apart, and the candidate pairs per
photo. Linear growth means the pair stage's seconds per photo stay flat from 200 to
2,000 (no all-pairs matching anywhere: copies come from the PDQ index and digests,
scenes from each photo's top ``scene_candidates`` by descriptor votes).

    python scripts/bench_dedup.py [--sizes 200 2000] [--policy FILE] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from photocheck.cli import iter_image_paths
from photocheck.policy import default_policy, load_policy
from photocheck.similarity import dedup

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"


def real_photos(data: Path) -> list[Path]:
    """Photos of the data folder, the damaged inputs left out (not photos from the field)."""
    return [p for p in iter_image_paths([data]) if "bad_input" not in p.parts]


def repeated(photos: list[Path], n: int, folder: Path) -> list[Path]:
    """``n`` files: the photos in order, then again, under new names (symlinks)."""
    out = []
    for i in range(n):
        src = photos[i % len(photos)]
        link = folder / f"r{i // len(photos)}_{i:05d}_{src.name}"
        link.symlink_to(src.resolve())
        out.append(link)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("--policy", type=Path)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    policy = load_policy(args.policy) if args.policy else default_policy()
    photos = real_photos(args.data)
    print(
        f"{len(photos)} real photos in {args.data}, repeated under new names to each size; "
        f"matcher {policy.similarity.scene_matcher}, {args.workers} threads"
    )
    rows = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory(prefix="bench-dedup-") as tmp:
            files = repeated(photos, n, Path(tmp))
            t0, c0 = time.perf_counter(), time.process_time()
            entries = dedup.load_entries(files, policy=policy, workers=args.workers)
            t1, c1 = time.perf_counter(), time.process_time()
            pairs = dedup.dedup_entries(entries, policy=policy, workers=args.workers)
            t2, c2 = time.perf_counter(), time.process_time()
        m = len(entries)
        kinds = {r: sum(p.relation == r for p in pairs) for r in ("same_photo", "same_scene")}
        rows.append((n, m, t2 - t0, t1 - t0, t2 - t1, c1 - c0, c2 - c1))
        print(
            f"N = {n:5d} files ({m} decodable): {m / (t2 - t0):6.2f} photos/s "
            f"({t2 - t0:.1f} s wall); per-photo stage {(t1 - t0) / m * 1000:.0f} ms wall "
            f"({(c1 - c0) / m * 1000:.0f} ms CPU) a photo, pair stage "
            f"{(t2 - t1) / m * 1000:.0f} ms wall ({(c2 - c1) / m * 1000:.0f} ms CPU) a photo; "
            f"{kinds['same_photo']} same_photo, {kinds['same_scene']} same_scene pairs"
        )
    if len(rows) >= 2:
        (n0, m0, w0, _, p0, _, pc0), (n1, m1, w1, _, p1, _, pc1) = rows[0], rows[-1]
        print(
            f"growth {n0} -> {n1} files (x{m1 / m0:.1f} photos): total time x{w1 / w0:.1f}, "
            f"pair stage x{p1 / p0:.1f} wall, x{pc1 / pc0:.1f} CPU "
            f"(linear: x{m1 / m0:.1f}; all-pairs: x{(m1 / m0) ** 2:.0f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
