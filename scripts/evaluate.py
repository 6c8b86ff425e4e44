#!/usr/bin/env python3
"""Evaluate photocheck on the labelled developer set.

Prints, per reason code, how many expectations of EXPECTED.tsv hold (all_of: the code
is present; none_of: it is absent; any_of rows count for each of their codes), the
verdict expectations, and per relation of DUPLICATES.tsv precision and recall.

    python scripts/evaluate.py [--data ../shared/data] [--failures] [--matcher xfeat]

``--matcher xfeat`` scores the opt-in XFeat matcher instead of `photocheck dedup`'s
ORB: on the developer set (DUPLICATES.tsv + scenes/DUPLICATES.tsv), each labelled pair
decided by the one engine (``engine.decide``) with XFeat verification (~0.3 s a pair;
candidate retrieval at scale is ``scripts/bench_scene_scale.py``'s).

Thresholds are calibrated on these numbers, not on single files.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path

from photocheck import ContentModel, Policy, check_photo, default_policy
from photocheck.decode import decode
from photocheck.fingerprints import Fingerprint, fingerprint
from photocheck.similarity import xfeat_scene
from photocheck.similarity.dedup import dedup_files
from photocheck.similarity.engine import decide

ROOT = Path(__file__).resolve().parent.parent
XFEAT_PAIR_FILES = ("DUPLICATES.tsv", "scenes/DUPLICATES.tsv")  # the developer set


def _codes(cell: str) -> set[str]:
    return {c for c in cell.split(",") if c}


def evaluate_checks(data: Path, show_failures: bool) -> bool:
    policy, model = default_policy(), ContentModel()
    rows = list(csv.DictReader((data / "EXPECTED.tsv").open(encoding="utf-8"), delimiter="\t"))
    held: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # code -> [held, total]
    failures: list[str] = []
    for row in rows:
        report = check_photo((data / row["relpath"]).read_bytes(), policy=policy, model=model)
        got = {c.value for c in report.codes}
        verdict = report.verdict.value
        if row["verdict"] in ("reject", "not_reject"):
            ok = (verdict == "reject") == (row["verdict"] == "reject")
            held["(verdict)"][0] += ok
            held["(verdict)"][1] += 1
            if not ok:
                failures.append(f"{row['relpath']}: verdict {verdict}, expected {row['verdict']}")
        for code in _codes(row["all_of"]):
            ok = code in got
            held[code][0] += ok
            held[code][1] += 1
            if not ok:
                failures.append(f"{row['relpath']}: missing {code} (got {sorted(got)})")
        for code in _codes(row["none_of"]):
            ok = code not in got
            held[code][0] += ok
            held[code][1] += 1
            if not ok:
                failures.append(f"{row['relpath']}: unexpected {code}")
        any_of = _codes(row["any_of"])
        if any_of:
            ok = bool(any_of & got)
            key = "any(" + "|".join(sorted(any_of)) + ")"
            held[key][0] += int(ok)
            held[key][1] += 1
            if not ok:
                failures.append(f"{row['relpath']}: none of {sorted(any_of)} (got {sorted(got)})")
    print(f"EXPECTED.tsv: {len(rows)} files, policy {policy.version}, model {model.version}")
    print(f"{'code':<44}{'held':>6}{'total':>7}")
    for code in sorted(held):
        n_held, total = held[code]
        print(f"{code:<44}{n_held:>6}{total:>7}{'' if n_held == total else '   <-'}")
    all_ok, all_total = sum(v[0] for v in held.values()), sum(v[1] for v in held.values())
    print(f"{'all expectations':<44}{all_ok:>6}{all_total:>7}")
    if show_failures:
        for line in failures:
            print("  FAIL", line)
    return not failures


def _xfeat_found(
    data: Path, pairs: list[dict[str, str]], policy: Policy
) -> dict[frozenset[str], str]:
    """Each labelled pair decided by the engine with XFeat verification."""
    sim = policy.similarity
    photos: dict[str, tuple[Fingerprint, xfeat_scene.SceneFeatures]] = {}
    for name in sorted({p[k] for p in pairs for k in ("a", "b")}):
        raw = (data / name).read_bytes()
        photo = decode(
            raw, max_pixels=policy.quality.max_pixels, working_size=policy.quality.working_size
        )
        photos[name] = fingerprint(raw, photo), xfeat_scene.extract_scene_features(photo.grey)
    found: dict[frozenset[str], str] = {}
    for p in pairs:
        (fa, sa), (fb, sb) = photos[p["a"]], photos[p["b"]]

        def verify(
            sa: xfeat_scene.SceneFeatures = sa, sb: xfeat_scene.SceneFeatures = sb
        ) -> dict[str, object] | None:
            m = xfeat_scene.match_scene(sa, sb, sim)
            return m.evidence() if m.is_same_scene else None

        decision = decide(fa, fb, verify, sim)
        if decision is not None:
            found[frozenset((p["a"], p["b"]))] = decision.relation
    return found


def evaluate_pairs(data: Path, show_failures: bool, matcher: str = "orb") -> bool:
    names = XFEAT_PAIR_FILES if matcher == "xfeat" else ("DUPLICATES.tsv",)
    pairs = [
        row
        for name in names
        for row in csv.DictReader((data / name).open(encoding="utf-8"), delimiter="\t")
    ]
    files = sorted({data / p[k] for p in pairs for k in ("a", "b")})
    found: dict[frozenset[str], str] = {}
    if matcher == "xfeat":
        found = _xfeat_found(data, pairs, default_policy())
    for match in dedup_files(files, policy=default_policy()) if matcher == "orb" else ():
        a = str(Path(match["a"]).resolve().relative_to(data.resolve()))
        b = str(Path(match["b"]).resolve().relative_to(data.resolve()))
        found[frozenset((a, b))] = match["relation"]
    labelled = {frozenset((p["a"], p["b"])): p["relation"] for p in pairs}
    print(f"\n{' + '.join(names)}: {len(labelled)} labelled pairs over {len(files)} files")
    print(f"{'relation':<14}{'labelled':>9}{'found':>7}{'TP':>5}{'precision':>11}{'recall':>8}")
    ok_all = True
    for relation in ("same_photo", "same_scene"):
        truth = {k for k, v in labelled.items() if v == relation}
        predicted = {k for k, v in found.items() if v == relation and k in labelled}
        tp = len(truth & predicted)
        precision = tp / len(predicted) if predicted else 1.0
        recall = tp / len(truth) if truth else 1.0
        print(
            f"{relation:<14}{len(truth):>9}{len(predicted):>7}{tp:>5}{precision:>11.2f}{recall:>8.2f}"
        )
        ok_all &= tp == len(truth) == len(predicted)
    any_dup = {k for k, v in labelled.items() if v != "different"}
    paired = {k for k in found if k in labelled}
    tp = len(any_dup & paired)
    print(
        f"{'any relation':<14}{len(any_dup):>9}{len(paired):>7}{tp:>5}"
        f"{(tp / len(paired) if paired else 1.0):>11.2f}{(tp / len(any_dup)):>8.2f}"
    )
    if show_failures:
        for k, v in labelled.items():
            got = found.get(k, "none")
            if (v == "different") != (got == "none") or (v != "different" and got != v):
                print("  PAIR", " <-> ".join(sorted(k)), f"labelled {v}, found {got}")
    return ok_all


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--failures", action="store_true", help="list every failed expectation")
    parser.add_argument("--matcher", choices=("orb", "xfeat"), default="orb")
    args = parser.parse_args()
    checks_ok = evaluate_checks(args.data, args.failures)
    pairs_ok = evaluate_pairs(args.data, args.failures, args.matcher)
    return 0 if checks_ok and pairs_ok else 1


if __name__ == "__main__":
    sys.exit(main())
