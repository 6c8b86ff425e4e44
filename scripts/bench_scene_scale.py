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
import re
import sys
import time
from pathlib import Path

import numpy as np

from photocheck.cli import iter_image_paths
from photocheck.decode import decode
from photocheck.errors import DecodeError
from photocheck.policy import default_policy
from photocheck.similarity.retrieval import INDEX_KEYPOINTS, MAX_LISTS, DescriptorVoteIndex
from photocheck.similarity.xfeat_scene import SceneFeatures, extract_scene_features, match_scene

XFEAT_CANDIDATES = 16  # per photo, by descriptor votes (scene-matcher: the top 16 hold 70/70)

ROOT = Path(__file__).resolve().parent.parent
KS = (1, 2, 4, 8, 16, 32)
# Same-scene groups (as in calibrate_scene.py): photos of one scene are not distractors.
RELATED = (r"ukbench00120", r"leuven_img", r"canon_hdr_", r"herz_jesu_", r"bikes_img")


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
    return f"{label:<34}{cells}   of {len(ranks)}"


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
        feats[str(path.relative_to(data))] = extract_scene_features(photo.grey)
    cpu = time.process_time() - cpu
    distractors = sorted(set(feats) - labelled_names)
    print(
        f"{len(feats)} photos extracted ({cpu / len(feats) * 1000:.0f} ms CPU each with decode); "
        f"{len(scene_pairs)} same-scene pairs over {len(labelled_names)} labelled photos, "
        f"{len(distractors)} other real photos as distractors\n"
    )

    alone = DescriptorVoteIndex.build([(n, feats[n]) for n in sorted(labelled_names)])
    full = DescriptorVoteIndex.build([(n, feats[n]) for n in sorted(feats)])
    ranks_alone, _ = _ranks(alone, feats, scene_pairs)
    t0 = time.process_time()
    ranks_full, votes = _ranks(full, feats, scene_pairs)
    q_cpu = (time.process_time() - t0) / len({n for p in scene_pairs for n in p})
    print("candidate stage, recall@K (either photo finds the other):")
    print(_recall_line("labelled photos only", ranks_alone))
    print(_recall_line(f"+ {len(distractors)} distractors", ranks_full))

    verified = {(a, b): match_scene(feats[a], feats[b], sim).is_same_scene for a, b in scene_pairs}
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
    for n in (len(feats), 10_000, 100_000):
        means = [n * _survival(v, dv, tail) for v in true_votes]

        def recall(k: int, means: list[float] = means) -> float:
            return float(np.mean([_poisson_cdf(k - 1, m) for m in means]))

        cells = "  ".join(f"@{k} {recall(k):.0%}" for k in KS)
        need = next((k for k in (*KS, 64, 128, 256, 512) if recall(k) >= 0.97), None)
        print(f"  N = {n:>7,}: {cells}   K for 97 %: {need or '> 512'}")
    print(
        "with GPS: candidates are the photos within 50 m; at 100,000 photos on 1,500 km² "
        "and villages 20x denser than the county mean, that is about "
        f"{100_000 / 1500 * 20 * np.pi * 0.05**2:.0f} photos, all verified"
    )

    # Timing on a synthetic county index.
    n = args.synthetic
    rng = np.random.default_rng(0)

    def fake(count: int) -> list[SceneFeatures]:
        v = rng.standard_normal((count, INDEX_KEYPOINTS, 64), dtype=np.float32)
        v /= np.linalg.norm(v, axis=2, keepdims=True)
        pts = np.zeros((INDEX_KEYPOINTS, 2), np.float32)
        return [SceneFeatures(640, 480, pts, d) for d in v]

    t0, c0 = time.perf_counter(), time.process_time()
    first = min(n, 2000)  # trains the inverted file (MAX_LISTS lists), then photos come in
    synth = DescriptorVoteIndex.build(list(enumerate(fake(first))), nlist=MAX_LISTS)
    for start in range(first, n, 2000):
        for i, f in enumerate(fake(min(2000, n - start)), start):
            synth.add(i, f)
    build_s, build_cpu = time.perf_counter() - t0, time.process_time() - c0
    qs = list(feats.values())[:50]
    c0 = time.process_time()
    for f in qs:
        synth.query(f, 32)
    per_query = (time.process_time() - c0) / len(qs)
    print(
        f"\nsynthetic index of {n:,} photos ({n * INDEX_KEYPOINTS:,} descriptors): built in "
        f"{build_s:.0f} s ({build_cpu:.0f} s CPU); a query {per_query * 1000:.1f} ms CPU; "
        f"one candidate stage query on the real {len(feats)}-photo index {q_cpu * 1000:.1f} ms CPU"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
