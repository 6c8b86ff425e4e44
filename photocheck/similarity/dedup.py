"""`photocheck dedup`: pair the same photo and the same scene across many files.

Two relations, ``same_photo`` and ``same_scene``, decided pair by pair by the one
duplicate engine (``similarity.engine``: the service asks the same rule). This module
only finds the candidate pairs and verifies them.

Not O(n²) geometric matching: copies come from the PDQ index; for scenes, every
descriptor votes for the photos holding its nearest neighbours, and only each photo's
top ``scene_candidates`` are verified. The policy's ``scene_matcher`` picks the
features: XFeat (the default; votes by ``retrieval.DescriptorVoteIndex``, verified by
``xfeat_scene.match_scene``'s two stages) or ORB (FLANN LSH votes, ``scene.match_scene``).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np

from ..decode import decode
from ..errors import DecodeError
from ..fingerprints import Fingerprint, fingerprint
from ..policy import Policy, SimilarityPolicy
from . import scene as orb
from . import xfeat_scene as xfeat
from .engine import decide, query_variants
from .index import PackedPDQIndex
from .retrieval import DescriptorVoteIndex

__all__ = ["Pair", "PhotoEntry", "dedup_entries", "dedup_files", "load_entries"]

Progress = Callable[[Sequence[Any], str], Iterable[Any]]
LSH_MAX_HAMMING = 48  # descriptor matches farther than this do not vote (ORB: 256 bits)
LSH_MIN_VOTES = 4


@dataclass(frozen=True, eq=False)
class PhotoEntry:
    name: str
    fingerprint: Fingerprint
    features: orb.SceneFeatures | xfeat.SceneFeatures  # the policy's scene_matcher's


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    relation: str  # same_photo | same_scene
    distance: int | None  # PDQ bits (best dihedral variant); None without usable PDQ
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "relation": self.relation,
            "distance": self.distance,
            "evidence": self.evidence,
        }


def _no_progress(items: Sequence[Any], desc: str) -> Iterable[Any]:
    return items


def _in_order(
    work: Callable[[Any], Any],
    items: Sequence[Any],
    desc: str,
    progress: Progress,
    workers: int | None,
) -> Iterator[Any]:
    """``work`` over ``items`` on a thread pool, results in input order as they finish.

    Decoding (libjpeg-turbo, Pillow) and OpenCV release the GIL, so threads overlap
    the heavy parts; the progress bar advances over the items in order.
    """
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        futures = [pool.submit(work, item) for item in items]
        for future in progress(futures, desc):
            yield future.result()


def load_entries(
    files: Sequence[Path],
    *,
    policy: Policy,
    progress: Progress = _no_progress,
    note: Callable[[str], None] | None = None,
    names: Sequence[str] | None = None,
    workers: int | None = None,
) -> list[PhotoEntry]:
    """Decode each file once; fingerprint it and extract its scene features.

    Unreadable files are skipped; ``note`` hears why (in input order). ``workers``
    threads (default: one per CPU) share the work; the result does not depend on it.
    """
    paths = list(files)
    labels = list(names) if names is not None else [str(p) for p in paths]
    module = _matcher(policy.similarity)

    def extract(grey: np.ndarray) -> orb.SceneFeatures | xfeat.SceneFeatures:
        # as the service stores them (XFeat: float16 descriptors, 1/8 px), so both
        # paths judge a pair from the same numbers
        made = module.extract_scene_features(grey)
        return module.SceneFeatures.from_bytes(made.to_bytes())

    def load(i: int) -> PhotoEntry | str:
        try:
            data = Path(paths[i]).read_bytes()
            photo = decode(
                data,
                max_pixels=policy.quality.max_pixels,
                max_bytes=policy.quality.max_decode_bytes,
                working_size=policy.quality.working_size,
            )
        except (OSError, DecodeError) as exc:
            return f"skipped {labels[i]}: {exc}"
        return PhotoEntry(labels[i], fingerprint(data, photo), extract(photo.grey))

    entries = []
    for result in _in_order(load, range(len(paths)), "fingerprint", progress, workers):
        if isinstance(result, PhotoEntry):
            entries.append(result)
        elif note is not None:
            note(result)
    return entries


def _copy_candidates(entries: Sequence[PhotoEntry], sim: SimilarityPolicy) -> set[tuple[int, int]]:
    """Pairs (i < j) equal by digest or within the PDQ verify radius."""
    pairs: set[tuple[int, int]] = set()
    for attr in ("sha256", "pixel_sha256"):
        groups: dict[str, list[int]] = {}
        for i, e in enumerate(entries):
            value = getattr(e.fingerprint, attr)
            if value:
                groups.setdefault(value, []).append(i)
        for members in groups.values():
            pairs.update((a, b) for k, a in enumerate(members) for b in members[k + 1 :])
    index = PackedPDQIndex()
    for i, e in enumerate(entries):
        variants = query_variants(e.fingerprint, sim)
        if variants:
            for m in index.query_then_add(i, variants, sim.same_photo_verify_max_distance):
                pairs.add((cast(int, m.key), i))
    return pairs


def _lsh_matcher(descriptors: list[np.ndarray]) -> cv2.FlannBasedMatcher:
    matcher = cv2.FlannBasedMatcher(
        {"algorithm": 6, "table_number": 4, "key_size": 20, "multi_probe_level": 1},
        {"checks": 16},
    )
    matcher.add(descriptors)
    matcher.train()
    return matcher


def _matcher(sim: SimilarityPolicy) -> Any:
    """The scene matcher module the policy names (both have the same two functions)."""
    return xfeat if sim.scene_matcher == "xfeat" else orb


def _voted_candidates(entries: Sequence[PhotoEntry], per_photo: int) -> set[tuple[int, int]]:
    """Pairs (i < j) where one is among the other's ``per_photo`` most voted photos
    (XFeat descriptors, ``retrieval.DescriptorVoteIndex``)."""
    feats = [(i, cast(xfeat.SceneFeatures, e.features)) for i, e in enumerate(entries)]
    index = DescriptorVoteIndex.build(feats)
    found: set[tuple[int, int]] = set()
    for i, f in feats:
        for cand in index.query(f, per_photo, exclude=i):
            j = cast(int, cand.key)
            found.add((min(i, j), max(i, j)))
    return found


def _scene_candidates(
    entries: Sequence[PhotoEntry], per_photo: int, workers: int | None = None
) -> set[tuple[int, int]]:
    """Pairs (i < j) whose ORB descriptors vote for each other (FLANN LSH neighbours).

    The queries are split over threads, each with its own index (a FLANN matcher is
    not safe to share; building one takes ~0.1 s); the votes do not depend on the split.
    """
    nonempty = [i for i, e in enumerate(entries) if len(e.features)]
    if len(nonempty) < 2:
        return set()
    descriptors = [entries[i].features.descriptors for i in nonempty]
    n_chunks = max(1, min(workers or os.cpu_count() or 1, len(nonempty)))
    chunks = [nonempty[k::n_chunks] for k in range(n_chunks)]

    def vote(chunk: list[int]) -> set[tuple[int, int]]:
        matcher = _lsh_matcher(descriptors)
        found: set[tuple[int, int]] = set()
        for i in chunk:
            votes: Counter[int] = Counter()
            for nbrs in matcher.knnMatch(entries[i].features.descriptors, k=4):
                voted = {
                    nonempty[m.imgIdx]
                    for m in nbrs
                    if m.distance <= LSH_MAX_HAMMING and nonempty[m.imgIdx] != i
                }
                votes.update(voted)
            for j, n in votes.most_common(per_photo):
                if n >= LSH_MIN_VOTES:
                    found.add((min(i, j), max(i, j)))
        return found

    with ThreadPoolExecutor(max_workers=n_chunks) as pool:
        return set().union(*pool.map(vote, chunks))


def _classify(a: PhotoEntry, b: PhotoEntry, sim: SimilarityPolicy) -> Pair | None:
    """The engine's rule (``engine.decide``), with the policy's scene verification."""

    def verify() -> dict[str, Any] | None:
        scene = _matcher(sim).match_scene(a.features, b.features, sim)
        return scene.evidence() if scene.is_same_scene else None

    decision = decide(a.fingerprint, b.fingerprint, verify, sim)
    if decision is None:
        return None
    return Pair(a.name, b.name, decision.relation, decision.distance, decision.evidence)


def dedup_entries(
    entries: Sequence[PhotoEntry],
    *,
    policy: Policy,
    progress: Progress = _no_progress,
    workers: int | None = None,
) -> list[Pair]:
    """Every same_photo / same_scene pair among already fingerprinted photos."""
    sim = policy.similarity
    if sim.scene_matcher == "xfeat":
        scenes = _voted_candidates(entries, sim.scene_candidates)
    else:
        scenes = _scene_candidates(entries, sim.scene_candidates, workers)
    candidates = _copy_candidates(entries, sim) | scenes

    def classify(ij: tuple[int, int]) -> Pair | None:
        return _classify(entries[ij[0]], entries[ij[1]], sim)

    found = _in_order(classify, sorted(candidates), "verify", progress, workers)
    return [pair for pair in found if pair is not None]


def dedup_files(
    files: Sequence[Path],
    *,
    policy: Policy,
    progress: Progress = _no_progress,
    note: Callable[[str], None] | None = None,
    workers: int | None = None,
) -> Iterator[dict[str, Any]]:
    """JSON-ready pairs for `photocheck dedup`; unreadable files are skipped (see ``note``)."""
    entries = load_entries(files, policy=policy, progress=progress, note=note, workers=workers)
    for pair in dedup_entries(entries, policy=policy, progress=progress, workers=workers):
        yield pair.to_json()
