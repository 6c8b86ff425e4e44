#!/usr/bin/env python3
"""CPU of the XFeat same-scene verification: per pair and stage, and per scene check.

    python scripts/bench_scene_match.py [--ref main] [--probes 16] [--data ../shared/data]

Two code paths in one process, pair by pair in turn (so that both see the same load;
the machine is shared): ``new``, this tree's ``similarity/xfeat_scene.py`` with this
tree's policy, and ``old``, the same module and ``default_policy.toml`` as they are at
git revision ``--ref`` (read with ``git show``, with the ref's ``xfeat.py`` runtime; both
read this tree's model files).

Photos: the developer set (``DUPLICATES.tsv`` + ``scenes/DUPLICATES.tsv``) and the Lund
street frames, features made once (extraction is not what is compared). A scene check
is simulated as the service's: ``--probes`` photos, each verified against its 16 top
candidates by descriptor votes (``retrieval.DescriptorVoteIndex``, what `photocheck
dedup` takes; the service ranks by embedding and GPS, a similar mix of look-alikes and
true pairs). A check of 8 candidates is the first 8 of them.

Printed per path: stage 1 (mutual nearest descriptors + fundamental matrix) ms a pair,
LighterGlue ms a pair that reaches it, the fraction that does, the mean a pair, and the
CPU a scene check costs with 8 and 16 candidates (p50 and mean), old / new as a ratio;
and whether both paths decide every pair alike. CPU is ``time.process_time`` (every
thread of the process: a multi-threaded BLAS's spinning counts).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from photocheck.decode import decode
from photocheck.policy import SimilarityPolicy, default_policy, parse_policy
from photocheck.similarity import xfeat, xfeat_scene
from photocheck.similarity.retrieval import DescriptorVoteIndex

ROOT = Path(__file__).resolve().parent.parent
LABELS = ("DUPLICATES.tsv", "scenes/DUPLICATES.tsv")
CANDIDATES = (8, 16)
MODULE = "photocheck/similarity/xfeat_scene.py"
RUNTIME = "photocheck/similarity/xfeat.py"


def _git_show(ref: str, path: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{ref}:{path}"],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout


def _load_source(name: str, source: str, origin: str) -> ModuleType:
    spec = importlib.util.spec_from_loader(name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    exec(compile(source, origin, "exec"), module.__dict__)
    return module


def load_ref(ref: str) -> tuple[ModuleType, SimilarityPolicy]:
    """The ref's matcher module and its XFeat runtime module (relative imports made
    absolute, the runtime reading this tree's model files), and the ref's policy."""
    safe = "".join(ch if ch.isalnum() else "_" for ch in ref)
    runtime = _git_show(ref, RUNTIME)
    runtime = runtime.replace("from ..errors import", "from photocheck.errors import")
    runtime = runtime.replace(
        'MODELS_DIR = Path(__file__).resolve().parent.parent / "models"',
        f"MODELS_DIR = Path({str(xfeat.MODELS_DIR)!r})",
    )
    runtime_name = f"ref_xfeat_{safe}"
    _load_source(runtime_name, runtime, f"{ref}:{RUNTIME}")
    source = _git_show(ref, MODULE)
    source = source.replace("from ..policy import", "from photocheck.policy import")
    source = source.replace("from .xfeat import", f"from {runtime_name} import")
    module = _load_source(f"ref_xfeat_scene_{safe}", source, f"{ref}:{MODULE}")
    policy = parse_policy(tomllib.loads(_git_show(ref, "photocheck/default_policy.toml")))
    return module, policy.similarity


@dataclass
class PathCost:
    """CPU seconds of one code path, per pair."""

    name: str
    nn: list[float] = field(default_factory=list)
    glue: list[float] = field(default_factory=list)
    pair: dict[tuple[str, str], float] = field(default_factory=dict)
    same: dict[tuple[str, str], bool] = field(default_factory=dict)


def time_pair(
    module: Any, sim: SimilarityPolicy, feats: dict[str, Any], a: str, b: str, cost: PathCost
) -> None:
    """``match_scene``'s two stages, each timed (the same calls match_scene makes)."""
    fa, fb = module.SceneFeatures.from_bytes(feats[a]), module.SceneFeatures.from_bytes(feats[b])
    t0 = time.process_time()
    first = module.nn_match(fa, fb, sim)
    spent = time.process_time() - t0
    cost.nn.append(spent)
    same = first.is_same_scene
    if not same and first.inliers >= sim.xfeat_nn_min_inliers:
        t0 = time.process_time()
        same = module.glue_match(fa, fb, sim).is_same_scene
        glue = time.process_time() - t0
        cost.glue.append(glue)
        spent += glue
    cost.pair[(a, b)] = spent
    cost.same[(a, b)] = same


def _names(data: Path) -> list[str]:
    names: set[str] = set()
    for label in LABELS:
        with (data / label).open(encoding="utf-8", newline="") as fh:
            for r in csv.DictReader(fh, delimiter="\t"):
                names.update((r["a"], r["b"]))
    names.update(str(p.relative_to(data)) for p in (data / "buildings/opensfm_lund").glob("*.jpg"))
    return sorted(names)


def _checks(feats: dict[str, bytes], probes: int) -> dict[str, list[str]]:
    """Each probe's top 16 voted candidates, probes spread over the sorted names."""
    decoded = {n: xfeat_scene.SceneFeatures.from_bytes(b) for n, b in feats.items()}
    names = sorted(decoded)
    index = DescriptorVoteIndex.build([(n, decoded[n]) for n in names])
    picked = [names[i] for i in np.linspace(0, len(names) - 1, probes).round().astype(int)]
    return {
        p: [str(c.key) for c in index.query(decoded[p], max(CANDIDATES), exclude=p)]
        for p in dict.fromkeys(picked)
    }


def _ms(values: list[float]) -> float:
    return float(np.mean(values) * 1000) if values else 0.0


def _check_stat(
    checks: dict[str, list[str]], k: int, stat: Callable[[list[float]], Any]
) -> Callable[[PathCost], float]:
    """A statistic of the CPU ms per scene check of ``k`` candidates (its pairs' sum)."""

    def of(c: PathCost) -> float:
        return float(
            stat([sum(c.pair[(p, q)] for q in cands[:k]) * 1000 for p, cands in checks.items()])
        )

    return of


def report(old: PathCost, new: PathCost, checks: dict[str, list[str]]) -> None:
    pairs = len(new.pair)
    rows: list[tuple[str, Callable[[PathCost], float]]] = [
        ("stage 1, ms a pair", lambda c: _ms(c.nn)),
        ("LighterGlue, ms a pair that reaches it", lambda c: _ms(c.glue)),
        ("pairs reaching LighterGlue, %", lambda c: 100 * len(c.glue) / max(len(c.pair), 1)),
        ("mean ms a pair (both stages)", lambda c: _ms(list(c.pair.values()))),
    ]
    for k in CANDIDATES:
        rows.append((f"scene check, {k} candidates, ms p50", _check_stat(checks, k, np.median)))
        rows.append((f"scene check, {k} candidates, ms mean", _check_stat(checks, k, np.mean)))
    print(f"{len(checks)} scene checks, {pairs} pairs; CPU (process_time)\n")
    print(f"{'':<42}{'old':>10}{'new':>10}{'old/new':>9}")
    for label, fn in rows:
        o, n = fn(old), fn(new)
        ratio = f"{o / n:.2f}x" if n else "-"
        print(f"{label:<42}{o:>10.1f}{n:>10.1f}{ratio:>9}")
    differ = [p for p in new.same if new.same[p] != old.same[p]]
    found_old, found_new = sum(old.same.values()), sum(new.same.values())
    print(f"\nsame scene: old {found_old}, new {found_new}; decided differently: {len(differ)}")
    for a, b in differ:
        print(f"  {a} ~ {b}: old {old.same[(a, b)]}, new {new.same[(a, b)]}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--ref", default="main", help="git revision of the old path")
    parser.add_argument("--probes", type=int, default=16, help="scene checks simulated")
    args = parser.parse_args(argv[1:])
    ref_module, ref_sim = load_ref(args.ref)
    sim = default_policy().similarity
    feats: dict[str, bytes] = {}
    for name in _names(args.data):
        photo = decode((args.data / name).read_bytes(), max_pixels=120_000_000)
        feats[name] = xfeat_scene.extract_scene_features(photo.grey).to_bytes()  # as stored
    checks = _checks(feats, args.probes)
    old, new = PathCost(f"{args.ref}"), PathCost("this tree")
    for probe, cands in checks.items():
        for cand in cands:
            a, b = probe, cand
            time_pair(ref_module, ref_sim, feats, a, b, old)
            time_pair(xfeat_scene, sim, feats, a, b, new)
    print(
        f"old: {args.ref} (policy {ref_sim.xfeat_nn_same_inliers}/{ref_sim.xfeat_nn_min_inliers}/"
        f"{ref_sim.xfeat_min_inliers}); new: this tree ({sim.xfeat_nn_same_inliers}/"
        f"{sim.xfeat_nn_min_inliers}/{sim.xfeat_min_inliers}) [nn same / nn floor / glue]"
    )
    report(old, new, checks)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
