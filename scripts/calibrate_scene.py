#!/usr/bin/env python3
"""Print the same-scene score distributions that ``[similarity] scene_*`` is set from.

Run: ``/work/venv/bin/python scripts/calibrate_scene.py [DATA_DIR] [--top N]``
(default ``../shared/data``). Every decodable photo under buildings/, near_dup/, blur/
and exif/ is matched against every other with ``match_scene`` and each pair is put in
one class:

- ``same_scene`` / ``same_photo`` / ``different``: labelled in DUPLICATES.tsv;
- ``related``: unlabelled but known to be one scene (the ukbench00120 copies, the
  orientation set, img_1771 = Canon_PowerShot_S40, the leuven/bikes series, the
  kwentar triplets, the three Herz-Jesu views, the HDR pair);
- ``lund_1`` / ``lund_2to6``: Lund frames 1 or 2-6 apart (overlap varies; not scored);
- ``impostor_lund``: Lund frames more than 6 apart (other houses, though some share
  the far end of the street);
- ``impostor``: every other pair. The worst impostor sets the threshold.

Printed per class: count, min / max / 99th percentile of inliers, and the pairs nearest
the threshold. Then the margins of the current policy, and the mean cost per photo
(extraction) and per pair (matching) on this machine.

``--matcher xfeat`` calibrates the default matcher's ``xfeat_*`` keys instead, on the
developer set (``DUPLICATES.tsv`` + ``scenes/DUPLICATES.tsv``: 70 same_scene, 17
same_photo, 274 different), the Lund frames more than 6 apart (``impostor_lund``) and
each photo's top 8 candidates by descriptor votes (what `photocheck dedup` verifies;
unlabelled ones classed as above): both stages, see ``calibrate_xfeat``.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from photocheck.decode import decode
from photocheck.errors import DecodeError
from photocheck.policy import default_policy
from photocheck.similarity import xfeat_scene
from photocheck.similarity.retrieval import DescriptorVoteIndex
from photocheck.similarity.scene import SceneFeatures, extract_scene_features, match_scene

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("buildings", "near_dup", "blur", "exif")
RELATED = (
    r"ukbench00120",
    r"orientation/Landscape_",
    r"img_1771_|Canon_PowerShot_S40\.jpg",
    r"leuven_img",
    r"canon_hdr_",
    r"herz_jesu_",
    r"bikes_img",
    r"kwentar_triplets/106_",
    r"kwentar_triplets/176_",
)
# Classes whose best score must stay under the threshold, and those that must pass it.
NEGATIVE = ("different", "impostor", "impostor_lund")
POSITIVE = ("same_scene",)


def _lund(name: str) -> int | None:
    m = re.search(r"opensfm_lund/(\d+)\.jpg$", name)
    return int(m.group(1)) if m else None


def classify(a: str, b: str, labels: dict[frozenset[str], str]) -> str:
    label = labels.get(frozenset((a, b)))
    if label is not None:
        return label
    if any(re.search(g, a) and re.search(g, b) for g in RELATED):
        return "related"
    ia, ib = _lund(a), _lund(b)
    if ia is not None and ib is not None:
        gap = abs(ia - ib)
        return "lund_1" if gap <= 1 else "lund_2to6" if gap <= 6 else "impostor_lund"
    return "impostor"


def load_features(data: Path, working_size: int) -> tuple[dict[str, SceneFeatures], float]:
    feats, spent = {}, 0.0
    for folder in FOLDERS:
        for path in sorted((data / folder).rglob("*")):
            if not path.is_file():
                continue
            try:
                photo = decode(path.read_bytes(), max_pixels=120_000_000, working_size=working_size)
            except DecodeError:
                continue
            t0 = time.perf_counter()
            feats[str(path.relative_to(data))] = extract_scene_features(photo.grey)
            spent += time.perf_counter() - t0
    return feats, spent / max(len(feats), 1)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--top", type=int, default=4, help="pairs shown per class")
    parser.add_argument("--matcher", choices=("orb", "xfeat"), default="orb")
    args = parser.parse_args(argv[1:])
    if args.matcher == "xfeat":
        return calibrate_xfeat(args.data, args.top)
    policy = default_policy()
    sim = policy.similarity
    with (args.data / "DUPLICATES.tsv").open(encoding="utf-8", newline="") as fh:
        labels = {
            frozenset((r["a"], r["b"])): r["relation"] for r in csv.DictReader(fh, delimiter="\t")
        }
    feats, extract_s = load_features(args.data, policy.quality.working_size)
    names = sorted(feats)
    by_class: dict[str, list[tuple[int, float, int, str, str]]] = defaultdict(list)
    t0 = time.perf_counter()
    for a, b in itertools.combinations(names, 2):
        m = match_scene(feats[a], feats[b], sim)
        by_class[classify(a, b, labels)].append((m.inliers, m.ratio, m.matches, a, b))
    pairs = sum(len(v) for v in by_class.values())
    match_s = (time.perf_counter() - t0) / max(pairs, 1)
    size = np.mean([len(f.to_bytes()) for f in feats.values()])

    print(f"{len(names)} photos, {pairs} pairs; policy scene_min_inliers={sim.scene_min_inliers}")
    print(f"scene_min_inlier_ratio={sim.scene_min_inlier_ratio}\n")
    print(f"{'class':<15}{'pairs':>6}{'min':>6}{'p99':>7}{'max':>6}{'paired':>8}")
    for cls in sorted(by_class):
        rows = sorted(by_class[cls], reverse=True)
        inl = [r[0] for r in rows]
        paired = sum(
            1 for r in rows if r[0] >= sim.scene_min_inliers and r[1] >= sim.scene_min_inlier_ratio
        )
        print(
            f"{cls:<15}{len(rows):>6}{min(inl):>6}{np.percentile(inl, 99):>7.1f}"
            f"{max(inl):>6}{paired:>8}"
        )
        shown = rows[: args.top] if cls in NEGATIVE else rows[-args.top :]
        for inliers, ratio, matches, a, b in shown:
            print(f"      {inliers:5d} inl  ratio {ratio:.2f}  {matches:4d} matches  {a} ~ {b}")
    worst = max((r for c in NEGATIVE for r in by_class.get(c, [])), default=None)
    weakest = min((r for c in POSITIVE for r in by_class.get(c, [])), default=None)
    print()
    if worst is not None:
        print(
            f"worst negative: {worst[0]} inliers, ratio {worst[1]:.2f} ({worst[3]} ~ {worst[4]}); "
            f"threshold / worst = {sim.scene_min_inliers / max(worst[0], 1):.2f}"
        )
    if weakest is not None:
        print(
            f"weakest labelled same_scene: {weakest[0]} inliers, ratio {weakest[1]:.2f} "
            f"({weakest[3]} ~ {weakest[4]}); weakest / threshold = "
            f"{weakest[0] / sim.scene_min_inliers:.2f}"
        )
    ratios = [r[1] for c in (*POSITIVE, "related", "lund_1") for r in by_class.get(c, [])]
    passing = [r for r in ratios if r > 0]
    if passing:
        print(f"inlier ratio of same-scene pairs: min {min(passing):.2f}")
    print(
        f"cost: extraction {extract_s * 1000:.1f} ms/photo, matching {match_s * 1000:.2f} ms/pair, "
        f"stored {size / 1000:.1f} KB/photo (mean)"
    )
    return 0


XFEAT_LABELS = ("DUPLICATES.tsv", "scenes/DUPLICATES.tsv")
XFEAT_NEGATIVE = ("different", "impostor", "impostor_lund")
XFEAT_TOP = 8  # candidates per photo by descriptor votes, as `photocheck dedup` takes them


def _xfeat_labels(data: Path) -> dict[frozenset[str], str]:
    labels: dict[frozenset[str], str] = {}
    for name in XFEAT_LABELS:
        with (data / name).open(encoding="utf-8", newline="") as fh:
            for r in csv.DictReader(fh, delimiter="\t"):
                labels[frozenset((r["a"], r["b"]))] = r["relation"]
    return labels


def _xfeat_pairs(
    labels: dict[frozenset[str], str], feats: dict[str, xfeat_scene.SceneFeatures]
) -> dict[frozenset[str], str]:
    """The labelled pairs, the Lund frames more than 6 apart, and every photo's top
    ``XFEAT_TOP`` voted candidates (the pairs `photocheck dedup` verifies), classed."""
    names = sorted(feats)
    pairs = set(labels)
    for a, b in itertools.combinations(names, 2):
        if classify(a, b, labels) == "impostor_lund":
            pairs.add(frozenset((a, b)))
    index = DescriptorVoteIndex.build([(n, feats[n]) for n in names])
    for n in names:
        pairs.update(
            frozenset((n, str(c.key))) for c in index.query(feats[n], XFEAT_TOP, exclude=n)
        )
    return {p: classify(min(p), max(p), labels) for p in pairs}


def calibrate_xfeat(data: Path, top: int) -> int:
    """``--matcher xfeat``: both stages' inlier counts against the ``xfeat_*`` keys.

    Stage 1 (mutual nearest descriptors + fundamental matrix) runs on every pair;
    LighterGlue on the labelled pairs, the far Lund frames and whatever falls in the
    band between stage 1's two thresholds. Margins: stage 1's "same" threshold over
    the strongest negative's stage-1 score; the weakest LighterGlue-found same_scene
    pair's stage-1 score over stage 1's floor; LighterGlue's threshold as before.
    """
    sim = default_policy().similarity
    labels = _xfeat_labels(data)
    frames = sorted((data / "buildings/opensfm_lund").glob("*.jpg"))
    names = sorted({n for k in labels for n in k} | {str(p.relative_to(data)) for p in frames})
    feats: dict[str, xfeat_scene.SceneFeatures] = {}
    extract_cpu = 0.0
    for name in names:
        photo = decode((data / name).read_bytes(), max_pixels=120_000_000)
        t0 = time.process_time()
        made = xfeat_scene.extract_scene_features(photo.grey)
        extract_cpu += time.process_time() - t0
        feats[name] = xfeat_scene.SceneFeatures.from_bytes(made.to_bytes())  # as stored
    pairs = _xfeat_pairs(labels, feats)
    rows: dict[str, list[tuple[int, int | None, str, str]]] = defaultdict(list)
    nn_cpu = glue_cpu = 0.0
    glued = band = 0
    for pair, cls in sorted(pairs.items(), key=lambda kv: sorted(kv[0])):
        a, b = sorted(pair)
        t0 = time.process_time()
        first = xfeat_scene.nn_match(feats[a], feats[b], sim)
        nn_cpu += time.process_time() - t0
        in_band = sim.xfeat_nn_min_inliers <= first.inliers and not first.is_same_scene
        band += in_band
        glue = None
        if in_band or cls in ("same_scene", "same_photo", "different", "impostor_lund"):
            t0 = time.process_time()
            glue = xfeat_scene.glue_match(feats[a], feats[b], sim).inliers
            glue_cpu += time.process_time() - t0
            glued += 1
        rows[cls].append((first.inliers, glue, a, b))
    print(
        f"{len(names)} photos, {len(pairs)} pairs (labelled, far Lund frames, top "
        f"{XFEAT_TOP} voted of each photo)"
    )
    print(
        f"stage 1: same from {sim.xfeat_nn_same_inliers}, different under "
        f"{sim.xfeat_nn_min_inliers}; LighterGlue: same from {sim.xfeat_min_inliers} "
        f"(ratio >= {sim.xfeat_min_inlier_ratio})\n"
    )
    print(f"{'class':<15}{'pairs':>6}{'nn min':>8}{'nn max':>8}{'lg min':>8}{'lg max':>8}")
    for cls in sorted(rows):
        r = rows[cls]
        nn = [x[0] for x in r]
        lg = [x[1] for x in r if x[1] is not None]
        lo, hi = (min(lg), max(lg)) if lg else ("-", "-")
        print(f"{cls:<15}{len(r):>6}{min(nn):>8}{max(nn):>8}{lo:>8}{hi:>8}")
        neg = cls in XFEAT_NEGATIVE
        for nn_in, lg_in, a, b in sorted(r, reverse=neg)[:top] if cls != "related" else []:
            print(f"      nn {nn_in:4d}  lg {lg_in if lg_in is not None else '-':>4}  {a} ~ {b}")
    negatives = [x for c in XFEAT_NEGATIVE for x in rows.get(c, [])]
    strongest_nn = max(negatives, key=lambda x: x[0])
    strongest_lg = max((x for x in negatives if x[1] is not None), key=lambda x: x[1] or 0)
    positives = rows.get("same_scene", [])
    found = [x for x in positives if (x[1] or 0) >= sim.xfeat_min_inliers]
    weakest_nn = min(found, key=lambda x: x[0])
    weakest_lg = min(found, key=lambda x: x[1] or 0)
    decided = [
        x
        for x in positives
        if x[0] >= sim.xfeat_nn_same_inliers
        or (x[0] >= sim.xfeat_nn_min_inliers and (x[1] or 0) >= sim.xfeat_min_inliers)
    ]
    print()
    print(
        f"stage 1 strongest negative {strongest_nn[0]} ({strongest_nn[2]} ~ {strongest_nn[3]}): "
        f"same threshold / it = {sim.xfeat_nn_same_inliers / max(strongest_nn[0], 1):.2f}"
    )
    print(
        f"stage 1 weakest same_scene that LighterGlue finds {weakest_nn[0]} ({weakest_nn[2]} ~ "
        f"{weakest_nn[3]}): it / floor = {weakest_nn[0] / max(sim.xfeat_nn_min_inliers, 1):.2f}"
    )
    print(
        f"LighterGlue strongest negative {strongest_lg[1]} ({strongest_lg[2]} ~ "
        f"{strongest_lg[3]}): threshold / it = "
        f"{sim.xfeat_min_inliers / max(strongest_lg[1] or 1, 1):.2f}; weakest same_scene "
        f"found {weakest_lg[1]}: / threshold = {(weakest_lg[1] or 0) / sim.xfeat_min_inliers:.2f}"
    )
    print(f"same_scene found by the two stages: {len(decided)}/{len(positives)}")
    print(f"pairs in the LighterGlue band: {band}/{len(pairs)} ({band / len(pairs):.1%})")
    per_glue = glue_cpu / max(glued, 1) * 1000
    stored = np.mean([len(f.to_bytes()) for f in feats.values()]) / 1000
    print(
        f"CPU cost: extraction {extract_cpu / len(feats) * 1000:.1f} ms/photo, stage 1 "
        f"{nn_cpu / len(pairs) * 1000:.1f} ms/pair, LighterGlue {per_glue:.1f} ms/pair; "
        f"stored {stored:.1f} KB/photo"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
