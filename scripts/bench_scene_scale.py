#!/usr/bin/env python3
"""Same-scene recall at county scale: candidates by descriptor votes, then verification.

Run: ``.venv/bin/python scripts/bench_scene_scale.py [--data ../shared/data]
[--synthetic 100000]``.

1. Every decodable photo of ../shared/data is extracted once (XFeat). The labelled
   same-scene pairs (DUPLICATES.tsv + scenes/DUPLICATES.tsv) are planted among all the
   other real photos as distractors (``similarity/retrieval.py``'s index over all of
   them), and, for comparison, indexed alone (only the photos of labelled pairs).
2. Candidate stage: recall@K, a pair counting when either photo finds the other in its
   top K by votes. End to end: a pair in the top ``XFEAT_CANDIDATES`` that
   ``match_scene`` verifies.
3. Estimate at 10,000 and 100,000 photos per county, without GPS: the votes a photo
   gives to photos of *other* buildings are measured (every query against every
   unrelated photo here) and their tail fitted (geometric, above the 90th percentile);
   a true partner with v votes is then outranked by a Poisson number of distractors of
   mean N * P(votes >= v), so recall@K(N) = mean over pairs of P(Poisson <= K - 1).
   With GPS the candidates are the photos within tens of metres; the script prints how
   many that is under a stated density.
4. Timing: a synthetic index of ``--synthetic`` photos (random unit descriptors:
   realistic list lengths, not realistic neighbours) built and queried.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import re
import sys
import time
from pathlib import Path

import faiss
import numpy as np

from photocheck.cli import iter_image_paths
from photocheck.decode import decode
from photocheck.errors import DecodeError
from photocheck.policy import SimilarityPolicy, default_policy
from photocheck.similarity.retrieval import (
    INDEX_KEYPOINTS,
    MAX_LISTS,
    NPROBE,
    DescriptorVoteIndex,
)
from photocheck.similarity.xfeat_scene import SceneFeatures, extract_scene_features, match_scene

XFEAT_CANDIDATES = 16  # per photo, by descriptor votes (scene-matcher: the top 16 hold 70/70)

ROOT = Path(__file__).resolve().parent.parent
KS = (1, 2, 4, 8, 16, 32)
# Same-scene groups (as in calibrate_scene.py): photos of one scene are not distractors.
RELATED = (r"ukbench00120", r"leuven_img", r"canon_hdr_", r"herz_jesu_", r"bikes_img")


FEATURE_CPU: list[float] = []  # seconds per photo, XFeat extraction (no decode)
VERIFY_CPU: dict[str, list[float]] = {"same_scene": [], "candidate": []}  # per pair


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


def _verify_costs(
    feats: dict[str, SceneFeatures],
    scene_pairs: list[tuple[str, str]],
    votes: dict[str, dict[str, int]],
    sim: SimilarityPolicy,
) -> tuple[float, float]:
    """(features, verifying a candidate) ms CPU, medians, printed with their spread."""
    # verification of candidates that are *not* the partner: each labelled photo's best
    # voted other building (what fills a top-K at county scale)
    partners = {frozenset(p) for p in scene_pairs}
    for a, v in list(votes.items())[:30]:
        other = next(
            (
                b
                for b in sorted(v, key=lambda k: -v[k])
                if frozenset((a, b)) not in partners and b != a
            ),
            None,
        )
        if other is not None:
            c = time.process_time()
            match_scene(feats[a], feats[other], sim)
            VERIFY_CPU["candidate"].append(time.process_time() - c)
    feat_ms = _pct(FEATURE_CPU, 50) * 1000
    ver = VERIFY_CPU["candidate"] or VERIFY_CPU["same_scene"]
    ver_ms, ver95 = _pct(ver, 50) * 1000, _pct(ver, 95) * 1000
    print(
        f"  features {feat_ms:.0f} ms CPU a photo (median); verifying a pair {ver_ms:.0f} ms "
        f"CPU median, {ver95:.0f} ms p95 over {len(ver)} voted non-partner candidates "
        f"(same-scene pairs: {_pct(VERIFY_CPU['same_scene'], 50) * 1000:.0f} ms median)"
    )
    return feat_ms, ver_ms


def _timing(
    n: int,
    feats: dict[str, SceneFeatures],
    need: int,
    feat_ms: float,
    ver_ms: float,
) -> None:
    """The candidate stage on a synthetic county index of ``n`` photos, and what one
    upload's scene check costs at that size (features + query + add + verification)."""
    faiss.omp_set_num_threads(os.cpu_count() or 1)  # the build (start-up); queries: one
    rng = np.random.default_rng(0)

    def fake(count: int, first: int) -> list[tuple[int, SceneFeatures]]:
        v = rng.standard_normal((count, INDEX_KEYPOINTS, 64), dtype=np.float32)
        v /= np.linalg.norm(v, axis=2, keepdims=True)
        pts = np.zeros((INDEX_KEYPOINTS, 2), np.float32)
        return [(first + i, SceneFeatures(640, 480, pts, d)) for i, d in enumerate(v)]

    rss0 = _rss()
    t0, c0 = time.perf_counter(), time.process_time()
    # trains the inverted file (MAX_LISTS lists, a bounded k-means sample of
    # TRAIN_PER_LIST a list), then the photos come in, as a county's restart reads them
    first = min(n, 2000)
    synth = DescriptorVoteIndex.build(fake(first, 0), nlist=MAX_LISTS)
    train_s = time.perf_counter() - t0
    for start in range(first, n, 5000):
        synth.add_many(fake(min(5000, n - start), start))
        if start % 25_000 < 5000:
            print(f"  ... {start + 5000:,} photos in {time.perf_counter() - t0:.0f} s", flush=True)
    build_s, build_cpu = time.perf_counter() - t0, time.process_time() - c0
    faiss.omp_set_num_threads(1)  # as in the service (one thread per request / job)
    real = list(feats.values())
    for f in real[:3]:
        synth.query(f, 32)  # the owners array is joined at the first query
    rss = _rss() - rss0
    q_cpu, q_wall = [], []
    for f in real[:200]:
        t, c = time.perf_counter(), time.process_time()
        synth.query(f, need)
        q_cpu.append(time.process_time() - c)
        q_wall.append(time.perf_counter() - t)
    add_cpu = []
    for i, f in enumerate(real[:50]):
        c = time.process_time()
        synth.add(n + i, f)
        add_cpu.append(time.process_time() - c)
    counted = synth.memory_bytes()
    stored = [f.to_bytes() for f in real[:50]]
    c = time.process_time()
    for data in stored:  # what a county's catch-up does per stored row (no DB read)
        SceneFeatures.from_bytes(data)
    parse_ms = (time.process_time() - c) / len(stored) * 1000
    print(
        f"\nsynthetic county index of {len(synth):,} photos ({n * INDEX_KEYPOINTS:,} "
        f"descriptors; random unit vectors: realistic list lengths, not realistic "
        f"neighbours; {MAX_LISTS} lists, {NPROBE} probed): built in {build_s:.0f} s wall "
        f"({build_cpu:.0f} s CPU; training {train_s:.0f} s wall), +{rss / 2**20:.0f} MB "
        f"resident ({rss / n:,.0f} B a photo; the index counts {counted / 2**20:.0f} MB, "
        f"{counted / n:,.0f} B a photo); parsing a stored row's features "
        f"{parse_ms:.2f} ms CPU, so a cold county of {n:,} rebuilds in ~"
        f"{(build_cpu + n * parse_ms / 1000) / 60:.1f} min CPU plus reading "
        f"{n * len(stored[0]) / 2**30:.1f} GiB of features from the database"
    )
    print(
        f"  candidate query (top {need}): CPU median {_pct(q_cpu, 50) * 1000:.1f} ms, p95 "
        f"{_pct(q_cpu, 95) * 1000:.1f} ms; wall median {_pct(q_wall, 50) * 1000:.1f} ms, "
        f"p95 {_pct(q_wall, 95) * 1000:.1f} ms ({len(q_cpu)} real photos' features); "
        f"adding a photo {_pct(add_cpu, 50) * 1000:.2f} ms CPU"
    )
    q_ms = _pct(q_cpu, 50) * 1000
    add_ms = _pct(add_cpu, 50) * 1000
    for k, label in ((need, "the K the estimate needs for 97 %"), (16, "16"), (8, "8")):
        total = feat_ms + q_ms + add_ms + k * ver_ms
        print(
            f"  per upload at {n:,} photos, {label} ({k}) verified: "
            f"{feat_ms:.0f} + {q_ms:.0f} + {add_ms:.1f} + {k} x {ver_ms:.0f} = "
            f"{total / 1000:.2f} s CPU"
        )


def _pairs(data: Path) -> list[tuple[str, str, str]]:
    out = []
    for name in ("DUPLICATES.tsv", "scenes/DUPLICATES.tsv"):
        with (data / name).open(encoding="utf-8", newline="") as fh:
            out += [(r["a"], r["b"], r["relation"]) for r in csv.DictReader(fh, delimiter="\t")]
    return out


def _group(name: str) -> str:
    for g in RELATED:
        if re.search(g, name):
            return g
    return str(Path(name).parent) if name.startswith("scenes/") else name


def _ranks(
    index: DescriptorVoteIndex, feats: dict[str, SceneFeatures], pairs: list[tuple[str, str]]
) -> tuple[list[int], dict[str, dict[str, int]]]:
    names = {n for p in pairs for n in p}
    votes = {
        n: {str(c.key): c.votes for c in index.query(feats[n], len(index), exclude=n)}
        for n in sorted(names)
    }
    ranked = {n: sorted(v, key=lambda k: (-v[k], k)) for n, v in votes.items()}

    def rank(a: str, b: str) -> int:
        ra = ranked[a].index(b) + 1 if b in ranked[a] else 10**9
        rb = ranked[b].index(a) + 1 if a in ranked[b] else 10**9
        return min(ra, rb)

    return [rank(a, b) for a, b in pairs], votes


def _recall_line(label: str, ranks: list[int]) -> str:
    cells = "  ".join(f"@{k} {sum(r <= k for r in ranks)}" for k in KS)
    return f"{label:<38}{cells}   of {len(ranks)}"


def _tail(distractor_votes: np.ndarray) -> tuple[float, float, float]:
    """Geometric tail P(votes >= v) ~ p0 * q ** (v - v0), fitted above the 90th percentile."""
    v0 = float(np.percentile(distractor_votes, 90))
    above = distractor_votes[distractor_votes >= v0]
    p0 = len(above) / len(distractor_votes)
    q = 1 - 1 / max(float(np.mean(above - v0)) + 1, 1.0)  # mean excess of a geometric law
    return v0, p0, q


def _survival(v: float, n_measured: np.ndarray, tail: tuple[float, float, float]) -> float:
    v0, p0, q = tail
    if v < v0:
        return float(np.mean(n_measured >= v))
    return p0 * q ** (v - v0)


def _poisson_cdf(k: int, mean: float) -> float:
    term = total = float(np.exp(-mean))
    for i in range(1, k + 1):
        term *= mean / i
        total += term
    return min(total, 1.0)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--synthetic", type=int, default=100_000, help="photos, timing part")
    parser.add_argument(
        "--timing-only",
        type=int,
        metavar="K",
        help="only the synthetic part, for top-K candidates (the recall part's K for 97 %%)",
    )
    args = parser.parse_args(argv[1:])
    sim = default_policy().similarity
    data = args.data
    labelled = _pairs(data)
    scene_pairs = [(a, b) for a, b, r in labelled if r == "same_scene"]
    labelled_names = {n for a, b, _ in labelled for n in (a, b)}

    feats: dict[str, SceneFeatures] = {}
    cpu = time.process_time()
    for path in iter_image_paths([data]):
        try:
            photo = decode(path.read_bytes(), max_pixels=120_000_000)
        except DecodeError:
            continue
        c0 = time.process_time()
        feats[str(path.relative_to(data))] = extract_scene_features(photo.grey)
        FEATURE_CPU.append(time.process_time() - c0)
        if args.timing_only and len(feats) == 60:
            break  # query features enough for the timing
    cpu = time.process_time() - cpu
    if args.timing_only:
        names = sorted(feats)
        near = {a: {b: 1} for a, b in itertools.pairwise(names)}  # any other photo
        feat_ms, ver_ms = _verify_costs(feats, [], near, sim)
        _timing(args.synthetic, feats, args.timing_only, feat_ms, ver_ms)
        return 0
    distractors = sorted(set(feats) - labelled_names)
    print(
        f"{len(feats)} photos extracted ({cpu / len(feats) * 1000:.0f} ms CPU each with decode); "
        f"{len(scene_pairs)} same-scene pairs over {len(labelled_names)} labelled photos, "
        f"{len(distractors)} other real photos as distractors\n"
    )

    alone = DescriptorVoteIndex.build([(n, feats[n]) for n in sorted(labelled_names)])
    full = DescriptorVoteIndex.build([(n, feats[n]) for n in sorted(feats)])
    ranks_alone, _ = _ranks(alone, feats, scene_pairs)
    ranks_full, votes = _ranks(full, feats, scene_pairs)
    print("candidate stage, recall@K (either photo finds the other):")
    print(_recall_line("labelled photos only", ranks_alone))
    print(_recall_line(f"+ {len(distractors)} distractors", ranks_full))
    # the same, searched as at county scale: the inverted file of 8-bit vectors
    total = len(feats) * INDEX_KEYPOINTS
    nlist = min(int(4 * np.sqrt(total)), MAX_LISTS)
    ivf = DescriptorVoteIndex.build([(n, feats[n]) for n in sorted(feats)], nlist=nlist)
    ranks_ivf, _ = _ranks(ivf, feats, scene_pairs)
    print(_recall_line(f"  as inverted file ({nlist} lists, {NPROBE} seen)", ranks_ivf))

    verified = {}
    for a, b in scene_pairs:
        c0 = time.process_time()
        verified[(a, b)] = match_scene(feats[a], feats[b], sim).is_same_scene
        VERIFY_CPU["same_scene"].append(time.process_time() - c0)
    k = XFEAT_CANDIDATES
    e2e_alone = sum(verified[p] and r <= k for p, r in zip(scene_pairs, ranks_alone, strict=True))
    e2e_full = sum(verified[p] and r <= k for p, r in zip(scene_pairs, ranks_full, strict=True))
    print(
        f"\nend to end (top {k} verified, xfeat_min_inliers {sim.xfeat_min_inliers}): "
        f"{e2e_alone}/{len(scene_pairs)} without distractors, {e2e_full}/{len(scene_pairs)} "
        f"with; verification alone passes {sum(verified.values())}/{len(scene_pairs)}"
    )

    # Votes that queries give to photos of other buildings (not their own scene group).
    measured = []
    for a, v in votes.items():
        for b in feats:
            if (
                b != a
                and _group(b) != _group(a)
                and frozenset((a, b)) not in {frozenset(p) for p in scene_pairs}
            ):
                measured.append(v.get(b, 0))
    dv = np.asarray(measured, float)
    tail = _tail(dv)
    true_votes = [
        max(votes[a].get(b, 0), votes[b].get(a, 0)) for a, b in scene_pairs
    ]  # the side that ranks the pair higher, as above
    print(
        f"\nvotes for other buildings: {len(dv)} query-photo pairs, mean {dv.mean():.2f}, "
        f"p99 {np.percentile(dv, 99):.0f}, max {dv.max():.0f}; tail fitted from {tail[0]:.0f} "
        f"votes (P={tail[1]:.3f}, x{tail[2]:.3f} per vote); true partners: median "
        f"{np.median(true_votes):.0f}, min {min(true_votes)}"
    )
    print("estimated recall of the candidate stage without GPS (N photos per county):")
    need_100k = 1024
    for n in (len(feats), 10_000, 100_000):
        means = [n * _survival(v, dv, tail) for v in true_votes]

        def recall(k: int, means: list[float] = means) -> float:
            return float(np.mean([_poisson_cdf(k - 1, m) for m in means]))

        cells = "  ".join(f"@{k} {recall(k):.0%}" for k in KS)
        need = next((k for k in (*KS, 64, 128, 256, 512) if recall(k) >= 0.97), None)
        print(f"  N = {n:>7,}: {cells}   K for 97 %: {need or '> 512'}")
        need_100k = need or 1024
    print(
        "with GPS: candidates are the photos within 50 m; at 100,000 photos on 1,500 km² "
        "and villages 20x denser than the county mean, that is about "
        f"{100_000 / 1500 * 20 * np.pi * 0.05**2:.0f} photos, all verified"
    )

    print("\ncost of the scene check's parts (this policy's matcher):")
    feat_ms, ver_ms = _verify_costs(feats, scene_pairs, votes, sim)
    if args.synthetic:
        _timing(args.synthetic, feats, need_100k, feat_ms, ver_ms)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
