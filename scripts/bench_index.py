"""Benchmark PackedPDQIndex on seeded random PDQ hashes; prints ratios, not verdicts.

Usage: python scripts/bench_index.py [--n 1000000] [--queries 200] [--radius 31]

Baselines measured in the same run (the machine is shared, so absolute times are
noisy): a numpy full scan (XOR + bitwise_count + sum over all rows) and a plain Python
loop over int hashes, timed on a subset and scaled to n.
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc

import numpy as np

from photocheck.similarity.index import PackedPDQIndex, _row_distances


def _planted(rng: np.random.Generator, base: bytes, flips: int) -> bytes:
    bits = np.unpackbits(np.frombuffer(base, dtype=np.uint8))
    bits[rng.choice(256, size=flips, replace=False)] ^= 1
    return np.packbits(bits).tobytes()


def _median_ms(fn, items) -> float:
    times = []
    for item in items:
        t = time.perf_counter()
        fn(item)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--radius", type=int, default=31)
    args = ap.parse_args()
    rng = np.random.default_rng(20261101)
    raw = rng.integers(0, 256, size=(args.n, 32), dtype=np.uint8)
    hashes = [bytes(r) for r in raw]

    tracemalloc.start()
    t = time.perf_counter()
    index = PackedPDQIndex(capacity=args.n)
    index.add_many(list(range(args.n)), hashes)
    build_s = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"index: {args.n:,} hashes, built in {build_s:.2f} s")
    print(
        f"memory: nbytes {index.nbytes / 1e6:.1f} MB, traced now {current / 1e6:.1f} MB "
        f"(hash list excluded: it is the caller's), build peak {peak / 1e6:.1f} MB"
    )

    # Queries: a planted neighbour at a random distance <= radius, plus 8 dihedral-like
    # variants (7 random hashes standing in for the other orientations).
    targets = rng.integers(0, args.n, size=args.queries)
    single = [_planted(rng, hashes[i], int(rng.integers(0, args.radius + 1))) for i in targets]
    eight = [
        [q, *(bytes(rng.integers(0, 256, 32, dtype=np.uint8)) for _ in range(7))] for q in single
    ]
    found = sum(
        int(t) in {m.key for m in index.query(q, args.radius)}
        for t, q in zip(targets, single, strict=True)
    )
    print(f"recall of planted neighbours: {found}/{args.queries}")

    fast1 = _median_ms(lambda q: index.query(q, args.radius), single)
    fast8 = _median_ms(lambda q: index.query(q, args.radius), eight)

    packed = index._rows[: args.n]  # the same packed rows, for a fair numpy baseline

    def numpy_scan(qs: list[bytes]) -> np.ndarray:
        out = []
        for q in qs:
            qv = np.frombuffer(q, dtype=np.uint64)
            d = _row_distances(packed, qv)  # the same column-add popcount
            out.append(np.flatnonzero(d <= args.radius))
        return np.concatenate(out)

    sub = min(20, args.queries)
    np1 = _median_ms(lambda q: numpy_scan([q]), single[:sub])
    np8 = _median_ms(numpy_scan, eight[:sub])

    ints = [int.from_bytes(h, "big") for h in hashes[:20_000]]

    def python_loop(q: bytes) -> list[int]:
        qi = int.from_bytes(q, "big")
        return [i for i, h in enumerate(ints) if (h ^ qi).bit_count() <= args.radius]

    py1 = _median_ms(python_loop, single[:5]) * args.n / len(ints)

    print(f"radius {args.radius}, median over {args.queries} queries:")
    print(f"  PackedPDQIndex, 1 hash    {fast1:8.2f} ms")
    print(f"  PackedPDQIndex, 8 hashes  {fast8:8.2f} ms")
    print(f"  numpy full scan, 1 hash   {np1:8.2f} ms  ({np1 / fast1:5.1f}x the index)")
    print(f"  numpy full scan, 8 hashes {np8:8.2f} ms  ({np8 / fast8:5.1f}x the index)")
    print(f"  Python loop, 1 hash       {py1:8.0f} ms  ({py1 / fast1:5.0f}x the index, scaled)")

    # Churn: removals are tombstones; adds land in the tail until the next rebuild.
    t = time.perf_counter()
    for k in range(4000):
        if k % 2:
            index.remove(k)
        else:
            index.add(args.n + k, hashes[k])
    print(f"churn: 2k removes + 2k adds in {time.perf_counter() - t:.2f} s, len {len(index):,}")
    fast8b = _median_ms(lambda q: index.query(q, args.radius), eight[:50])
    print(f"  8-hash query after churn  {fast8b:8.2f} ms")


if __name__ == "__main__":
    main()
