"""`photocheck dedup`: pair the same photo and the same scene across many files.

Two relations (DESIGN §4.2):

- ``same_photo``: a copy of one photo (re-saved, resized, grey, flipped, rotated,
  brightness-changed). Byte or pixel digest equal; or PDQ, any dihedral variant, within
  ``same_photo_max_distance``; or PDQ within ``same_photo_verify_max_distance`` *and* a
  homography that maps one frame onto the other (corner error tiny), which is what a
  copy with strong brightness/contrast edits looks like.
- ``same_scene``: not a copy, but the same house shot again: ORB matches that fit a
  homography with enough inliers.

Not O(n²) geometric matching: copies come from the PDQ index; for scenes, every
descriptor votes for the photos holding its nearest neighbours (FLANN LSH), and only
each photo's top ``scene_candidates`` are verified with RANSAC.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..decode import decode
from ..errors import DecodeError
from ..fingerprints import DIHEDRAL_NAMES, Fingerprint, fingerprint, hamming
from ..policy import Policy, SimilarityPolicy
from .index import PackedPDQIndex
from .scene import SceneFeatures, extract_scene_features, match_scene

__all__ = ["Pair", "PhotoEntry", "dedup_entries", "dedup_files", "load_entries"]

Progress = Callable[[Sequence[Any], str], Iterable[Any]]
LSH_MAX_HAMMING = 48  # descriptor matches farther than this do not vote (ORB: 256 bits)
LSH_MIN_VOTES = 4


@dataclass(frozen=True, eq=False)
class PhotoEntry:
    name: str
    fingerprint: Fingerprint
    features: SceneFeatures


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
        return PhotoEntry(labels[i], fingerprint(data, photo), extract_scene_features(photo.grey))

    entries = []
    for result in _in_order(load, range(len(paths)), "fingerprint", progress, workers):
        if isinstance(result, PhotoEntry):
            entries.append(result)
        elif note is not None:
            note(result)
    return entries


def _pdq_usable(fp: Fingerprint, sim: SimilarityPolicy) -> bool:
    return fp.pdq is not None and (fp.pdq_quality or 0) >= sim.min_pdq_quality


def _pdq_distance(a: Fingerprint, b: Fingerprint) -> tuple[int, int]:
    """Best (distance, variant) of a's dihedral variants against b's hash."""
    assert b.pdq is not None
    return min((hamming(v, b.pdq), i) for i, v in enumerate(a.pdq_dihedral))


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
        if _pdq_usable(e.fingerprint, sim):
            for m in index.query_then_add(
                i, e.fingerprint.pdq_dihedral, sim.same_photo_verify_max_distance
            ):
                pairs.add((int(m.key), i))
    return pairs


def _lsh_matcher(descriptors: list[np.ndarray]) -> cv2.FlannBasedMatcher:
    matcher = cv2.FlannBasedMatcher(
        {"algorithm": 6, "table_number": 4, "key_size": 20, "multi_probe_level": 1},
        {"checks": 16},
    )
    matcher.add(descriptors)
    matcher.train()
    return matcher


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
    fa, fb = a.fingerprint, b.fingerprint
    distance = variant = None
    if _pdq_usable(fa, sim) and _pdq_usable(fb, sim):
        distance, variant = _pdq_distance(fa, fb)
    evidence: dict[str, Any] = {}
    if variant is not None:
        evidence["pdq_variant"] = DIHEDRAL_NAMES[variant]
    if fa.sha256 == fb.sha256 or (fa.pixel_sha256 and fa.pixel_sha256 == fb.pixel_sha256):
        evidence["exact"] = "bytes" if fa.sha256 == fb.sha256 else "pixels"
        return Pair(a.name, b.name, "same_photo", distance, evidence)
    if distance is not None and distance <= sim.same_photo_max_distance:
        return Pair(a.name, b.name, "same_photo", distance, evidence)
    scene = match_scene(a.features, b.features, sim)
    evidence.update(scene.evidence())
    if not scene.is_same_scene:
        return None
    aligned = (
        scene.corner_error is not None and scene.corner_error <= sim.same_photo_max_corner_error
    )
    if distance is not None and distance <= sim.same_photo_verify_max_distance and aligned:
        return Pair(a.name, b.name, "same_photo", distance, evidence)
    return Pair(a.name, b.name, "same_scene", distance, evidence)


def dedup_entries(
    entries: Sequence[PhotoEntry],
    *,
    policy: Policy,
    progress: Progress = _no_progress,
    workers: int | None = None,
) -> list[Pair]:
    """Every same_photo / same_scene pair among already fingerprinted photos."""
    sim = policy.similarity
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
