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
from photocheck.policy import Policy, default_policy, load_policy
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


def _load_once(photos: list[Path], sizes: list[int], policy: Policy, workers: int) -> int:
    """The per-photo stage measured once on the real photos, the pair stage (candidates
    + verification: the only part that could grow faster than N) on their entries
    repeated to each size; photos/s = 1 / (per-photo + pair-stage seconds a photo)."""
    t0, c0 = time.perf_counter(), time.process_time()
    real = dedup.load_entries(photos, policy=policy, workers=workers)
    per_wall = (time.perf_counter() - t0) / len(real)
    per_cpu = (time.process_time() - c0) / len(real)
    print(
        f"per-photo stage (decode + fingerprint + features), {len(real)} real photos: "
        f"{per_wall * 1000:.0f} ms wall, {per_cpu * 1000:.0f} ms CPU a photo"
    )
    rows = []
    for n in sizes:
        entries = [
            dedup.PhotoEntry(f"r{i // len(real)}_{real[i % len(real)].name}", e.fingerprint,
                             e.features)
            for i, e in ((i, real[i % len(real)]) for i in range(n))
        ]  # fmt: skip
        t1, c1 = time.perf_counter(), time.process_time()
        pairs = dedup.dedup_entries(entries, policy=policy, workers=workers)
        wall, cpu = (time.perf_counter() - t1) / n, (time.process_time() - c1) / n
        rows.append((n, wall, cpu))
        scene = sum(p.relation == "same_scene" for p in pairs)
        print(
            f"N = {n:5d} entries: pair stage {wall * 1000:.0f} ms wall ({cpu * 1000:.0f} ms "
            f"CPU) a photo; {len(pairs) - scene} same_photo, {scene} same_scene pairs; "
            f"photocheck dedup ~{1 / (per_wall + wall):.2f} photos/s"
        )
    if len(rows) >= 2:
        (n0, w0, c0_), (n1, w1, c1_) = rows[0], rows[-1]
        print(
            f"growth {n0} -> {n1}: pair stage per photo x{w1 / w0:.2f} wall, "
            f"x{c1_ / c0_:.2f} CPU (linear: x1.0 a photo; all-pairs: x{n1 / n0:.0f})"
        )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("--policy", type=Path)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument(
        "--load-once",
        action="store_true",
        help="decode and feature each real photo once, repeat the entries (pair stage only)",
    )
    args = parser.parse_args()
    policy = load_policy(args.policy) if args.policy else default_policy()
    photos = real_photos(args.data)
    print(
        f"{len(photos)} real photos in {args.data}, repeated under new names to each size; "
        f"matcher {policy.similarity.scene_matcher}, {args.workers} threads"
    )
    if args.load_once:
        return _load_once(photos, args.sizes, policy, args.workers)
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
