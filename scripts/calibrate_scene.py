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

``--matcher xfeat`` calibrates the opt-in matcher's ``xfeat_*`` keys instead: at
~0.3 s a pair it scores only the labelled pairs of ``DUPLICATES.tsv`` +
``scenes/DUPLICATES.tsv`` (the developer set: 70 same_scene, 17 same_photo, 274
different) and the Lund frames more than 6 apart (``impostor_lund``).
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
XFEAT_NEGATIVE = ("different", "impostor_lund")


def _xfeat_pairs(data: Path) -> dict[frozenset[str], str]:
    """The developer set's labelled pairs, plus Lund frames more than 6 apart."""
    labels: dict[frozenset[str], str] = {}
    for name in XFEAT_LABELS:
        with (data / name).open(encoding="utf-8", newline="") as fh:
            for r in csv.DictReader(fh, delimiter="\t"):
                labels[frozenset((r["a"], r["b"]))] = r["relation"]
    frames = sorted((data / "buildings/opensfm_lund").glob("*.jpg"))
    num = {p: int(re.sub(r"\D", "", p.stem)) for p in frames}
    for a, b in itertools.combinations(frames, 2):
        if abs(num[a] - num[b]) > 6:
            pair = frozenset((str(a.relative_to(data)), str(b.relative_to(data))))
            labels.setdefault(pair, "impostor_lund")
    return labels


def calibrate_xfeat(data: Path, top: int) -> int:
    """``--matcher xfeat``: the labelled pairs' inlier counts against ``xfeat_*``."""
    sim = default_policy().similarity
    t_in, t_ratio = sim.xfeat_min_inliers, sim.xfeat_min_inlier_ratio
    labels = _xfeat_pairs(data)
    names = sorted({n for k in labels for n in k})
    feats: dict[str, xfeat_scene.SceneFeatures] = {}
    extract_cpu = 0.0
    for name in names:
        photo = decode((data / name).read_bytes(), max_pixels=120_000_000)
        t0 = time.process_time()
        feats[name] = xfeat_scene.extract_scene_features(photo.grey)
        extract_cpu += time.process_time() - t0
    by_class: dict[str, list[tuple[int, float, int, str, str]]] = defaultdict(list)
    t0 = time.process_time()
    for pair, cls in sorted(labels.items(), key=lambda kv: sorted(kv[0])):
        a, b = sorted(pair)
        m = xfeat_scene.match_scene(feats[a], feats[b], sim)
        by_class[cls].append((m.inliers, m.ratio, m.matches, a, b))
    match_cpu = (time.process_time() - t0) / max(len(labels), 1)
    size = np.mean([len(f.to_bytes()) for f in feats.values()])
    print(f"{len(names)} photos, {len(labels)} pairs; xfeat_min_inliers={t_in}")
    print(f"xfeat_min_inlier_ratio={t_ratio}\n")
    print(f"{'class':<15}{'pairs':>6}{'min':>6}{'max':>6}{'paired':>8}")
    for cls in sorted(by_class):
        rows = sorted(by_class[cls], reverse=True)
        inl = [r[0] for r in rows]
        paired = sum(1 for r in rows if r[0] >= t_in and r[1] >= t_ratio)
        print(f"{cls:<15}{len(rows):>6}{min(inl):>6}{max(inl):>6}{paired:>8}")
        for inliers, ratio, matches, a, b in rows[:top] if cls in XFEAT_NEGATIVE else rows[-top:]:
            print(f"      {inliers:5d} inl  ratio {ratio:.2f}  {matches:4d} matches  {a} ~ {b}")
    worst = max((r for c in XFEAT_NEGATIVE for r in by_class.get(c, [])), default=None)
    positives = sorted(by_class.get("same_scene", []))
    passing = [r for r in positives if r[0] >= t_in and r[1] >= t_ratio]
    print()
    if worst is not None:
        print(f"strongest negative: {worst[0]} ({worst[3]} ~ {worst[4]}); ", end="")
        print(f"threshold / strongest = {t_in / max(worst[0], 1):.2f}")
    if passing:
        print(
            f"weakest same_scene found: {passing[0][0]}; / threshold = {passing[0][0] / t_in:.2f}"
        )
    print(f"same_scene found {len(passing)}/{len(positives)}")
    print(
        f"CPU cost: extraction {extract_cpu / max(len(feats), 1) * 1000:.1f} ms/photo, "
        f"matching {match_cpu * 1000:.1f} ms/pair; stored {size / 1000:.1f} KB/photo (mean)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
