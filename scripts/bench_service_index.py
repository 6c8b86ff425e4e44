#!/usr/bin/env python3
"""The service's DuplicateIndex at scale: memory and query time on synthetic entries.

Fills ``photocheck.store.dupindex.DuplicateIndex`` with N synthetic photos (random PDQ
hashes, 1280-d content features, GPS points, 10 counties) the way the service's
start-up rebuild does, then prints:

* memory: resident bytes (tracemalloc and the arrays' nbytes) and file-backed bytes
  (GPS points and reduced embeddings, in an unlinked file under --spill-dir);
* the median same-photo query (8 dihedral variants, radius 31) with the ratio to a
  numpy brute force over the same packed hashes and to a plain Python loop (timed on a
  subset, scaled to N), all measured in this run;
* the median same-scene candidate query in one county.

``--separation`` also prints, on the developer set's labelled pairs
(../shared/data/DUPLICATES.tsv), the cosine of the content embeddings before and after
the reduction to 128-d int8: same-scene pairs must stay above the candidate threshold
and unrelated pairs below it.

    python scripts/bench_service_index.py [--n 1000000] [--queries 200] [--separation]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from photocheck.store.dupindex import DupEntry, DuplicateIndex, reduce_embeddings
from photocheck.store.intake import SCENE_MIN_SIMILARITY

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
COUNTIES = 10


def synthetic(n: int, dims: int, seed: int) -> Iterator[DupEntry]:
    rng = np.random.default_rng(seed)
    for start in range(0, n, 10_000):
        k = min(10_000, n - start)
        pdq = rng.integers(0, 256, size=(k, 32), dtype=np.uint8)
        emb = np.abs(rng.standard_normal((k, dims), dtype=np.float32))
        county = rng.integers(1, COUNTIES + 1, size=k)
        lat = 33.0 + county * 0.5 + rng.random(k) * 0.4
        lon = 110.0 + rng.random(k) * 0.4
        for i in range(k):
            yield DupEntry(
                photo_id=start + i + 1,
                household_id=start + i + 1,
                county_id=int(county[i]),
                site_code=None,
                pdq=pdq[i].tobytes(),
                embedding=emb[i],
                lat=float(lat[i]),
                lon=float(lon[i]),
                sha256="",
                pixel_sha256=None,
            )


def median_ms(fn: Callable[[int], object], count: int) -> float:
    times = []
    for i in range(count):
        t = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def flip(h: bytes, bits: np.ndarray) -> bytes:
    b = bytearray(h)
    for bit in bits:
        b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


def separation() -> None:
    """Cosine of labelled pairs, 1280-d vs reduced (the same-scene candidate filter)."""
    from photocheck import ContentModel, decode, default_policy

    model, quality = ContentModel(), default_policy().quality
    pairs = [line.split("\t") for line in (DATA / "DUPLICATES.tsv").read_text().splitlines()[1:]]
    cache: dict[str, np.ndarray] = {}

    def emb(rel: str) -> np.ndarray:
        if rel not in cache:
            photo = decode(
                (DATA / rel).read_bytes(),
                max_pixels=quality.max_pixels,
                working_size=quality.working_size,
            )
            cache[rel] = np.asarray(model.scores(photo).embedding, dtype=np.float32)
        return cache[rel]

    def cos(a: np.ndarray, b: np.ndarray) -> float:
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    rows: dict[str, list[tuple[float, float]]] = {}
    for a, b, relation in (p for p in pairs if len(p) == 3):
        ea, eb = emb(a), emb(b)
        ra, rb = reduce_embeddings(np.stack([ea, eb])).astype(np.float32)
        rows.setdefault(relation.strip(), []).append((cos(ea, eb), cos(ra, rb)))
    print(f"embedding cosine on DUPLICATES.tsv (candidate threshold {SCENE_MIN_SIMILARITY}):")
    for relation, vals in sorted(rows.items()):
        full, red = np.array(vals).T
        above = (red >= SCENE_MIN_SIMILARITY).sum()
        print(
            f"  {relation:10s} n={len(vals):3d}  1280-d {full.min():.3f}..{full.max():.3f}  "
            f"reduced {red.min():.3f}..{red.max():.3f}  |diff| max {np.abs(full - red).max():.3f}"
            f"  reduced >= threshold: {above}"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--dims", type=int, default=1280, help="synthetic feature length")
    ap.add_argument("--spill-dir", type=Path, default=None, help="default: a temp dir")
    ap.add_argument("--separation", action="store_true")
    args = ap.parse_args()
    if args.separation:
        separation()

    with tempfile.TemporaryDirectory(dir=args.spill_dir) as spill:
        tracemalloc.start()
        t = time.perf_counter()
        index = DuplicateIndex(spill_dir=Path(spill))
        index.build(synthetic(args.n, args.dims, seed=11))
        build_s = time.perf_counter() - t
        traced, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        mem = index.memory()
        print(f"index: {len(index):,} entries, built in {build_s:.1f} s")
        print(
            f"memory: resident {mem['resident'] / 1e6:.1f} MB by nbytes, {traced / 1e6:.1f} MB "
            f"traced after build (peak {peak / 1e6:.1f} MB while building); file-backed "
            f"{mem['file_backed'] / 1e6:.1f} MB (GPS + 128-d int8 embeddings)"
        )
        ok = mem["resident"] <= 100e6 and traced <= 100e6
        print(f"target <= 100 MB resident at 1M: {'OK' if ok else 'OVER'}")

        rng = np.random.default_rng(12)
        packed = index._pdq._rows[: len(index)]  # the baselines scan the same rows
        stored = [packed[i].tobytes() for i in rng.integers(0, len(index), args.queries)]
        queries = [
            [flip(s, rng.choice(256, 20, replace=False))]
            + [rng.bytes(32) for _ in range(7)]  # the other 7 dihedral variants
            for s in stored
        ]
        svc = median_ms(
            lambda i: index.same_photo(pdq_variants=queries[i], max_distance=31), args.queries
        )
        hits = index.same_photo(pdq_variants=queries[0], max_distance=31)
        assert hits and hits[0].distance == 20, hits

        def numpy_scan(i: int) -> None:
            qs = np.frombuffer(b"".join(queries[i]), dtype=np.uint64).reshape(-1, 4)
            for q in qs:
                d = np.bitwise_count(packed ^ q).sum(axis=1, dtype=np.int32)
                np.flatnonzero(d <= 31)

        brute = median_ms(numpy_scan, max(5, args.queries // 20))
        sub = 20_000
        ints = [int.from_bytes(packed[i].tobytes(), "big") for i in range(min(sub, len(index)))]

        def python_loop(i: int) -> None:
            qs = [int.from_bytes(q, "big") for q in queries[i]]
            [k for k, h in enumerate(ints) if min((q ^ h).bit_count() for q in qs) <= 31]

        loop = median_ms(python_loop, 3) * len(index) / len(ints)
        print(
            f"same-photo query (8 variants, r=31): median {svc:.3f} ms (target <= 5 ms); "
            f"numpy brute force {brute:.1f} ms ({brute / svc:.0f}x slower); "
            f"plain Python loop ~{loop:.0f} ms, scaled from {len(ints):,} "
            f"({loop / svc:.0f}x slower)"
        )
        emb = np.abs(rng.standard_normal((args.queries, args.dims), dtype=np.float32))
        scene = median_ms(
            lambda i: index.scene_candidates(
                county_id=1 + i % COUNTIES,
                exclude_household=-1,
                embedding=emb[i],
                lat=33.7,
                lon=110.2,
                min_similarity=SCENE_MIN_SIMILARITY,
                max_metres=30.0,
                limit=8,
            ),
            min(args.queries, 50),
        )
        print(
            f"same-scene candidates in one county (~{len(index) // COUNTIES:,} photos): "
            f"median {scene:.1f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
