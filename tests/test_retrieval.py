"""Descriptor-vote candidates (``similarity.retrieval``) on real photos: a re-shot
building's partner is among its most voted photos, exact or as the inverted file an
index becomes when it grows past ``FLAT_MAX`` one photo at a time (the service's
county indexes grow that way)."""

from __future__ import annotations

import pytest

from photocheck.decode import decode
from photocheck.policy import default_policy
from photocheck.similarity import retrieval
from photocheck.similarity.retrieval import DescriptorVoteIndex
from photocheck.similarity.xfeat_scene import SceneFeatures, extract_scene_features

from .conftest import DATA, load_duplicate_pairs

SCENES = "scenes/DUPLICATES.tsv"


@pytest.fixture(scope="module")
def photos() -> dict[str, SceneFeatures]:
    """The photos of the scenes set's first 12 same-scene pairs and of its look-alike
    different pairs that share a photo with them (the distractors that matter)."""
    rows = load_duplicate_pairs(SCENES)
    pairs = [(a, b) for a, b, r in rows if r == "same_scene"][:12]
    held = {n for p in pairs for n in p}
    pairs += [(a, b) for a, b, r in rows if r == "different" and (a in held or b in held)]
    q = default_policy().quality
    out = {}
    for name in sorted({n for p in pairs for n in p}):
        photo = decode(
            (DATA / name).read_bytes(),
            max_pixels=q.max_pixels,
            max_bytes=q.max_decode_bytes,
            working_size=q.working_size,
        )
        out[name] = extract_scene_features(photo.grey)
    return out


def _found(index: DescriptorVoteIndex, photos: dict[str, SceneFeatures], top: int) -> int:
    pairs = [(a, b) for a, b, r in load_duplicate_pairs(SCENES) if r == "same_scene"][:12]
    hits = 0
    for a, b in pairs:
        mine = {c.key for c in index.query(photos[a], top, exclude=a)}
        theirs = {c.key for c in index.query(photos[b], top, exclude=b)}
        hits += b in mine or a in theirs
    return hits


def test_partners_voted_exact_and_after_growing_into_an_inverted_file(
    photos: dict[str, SceneFeatures], monkeypatch: pytest.MonkeyPatch
) -> None:
    names = sorted(photos)
    exact = DescriptorVoteIndex.build([(n, photos[n]) for n in names])
    flat_found = _found(exact, photos, 4)
    print(f"\n{flat_found}/12 labelled pairs in the top 4, exact search over {len(names)} photos")
    assert flat_found >= 11

    monkeypatch.setattr(retrieval, "FLAT_MAX", 8 * retrieval.INDEX_KEYPOINTS)
    grown = DescriptorVoteIndex()
    for n in names:  # one by one, as a county's uploads arrive
        grown.add(n, photos[n])
    assert grown.vectors == exact.vectors and grown.memory_bytes() < exact.memory_bytes()
    ivf_found = _found(grown, photos, 4)
    print(f"{ivf_found}/12 after growing into an inverted file")
    assert ivf_found >= flat_found - 1


def test_keep_skips_refused_photos_without_counting_them(
    photos: dict[str, SceneFeatures],
) -> None:
    names = sorted(photos)
    index = DescriptorVoteIndex.build([(n, photos[n]) for n in names])
    q = photos[names[0]]
    best = [c.key for c in index.query(q, 4)]
    refused = best[0]
    kept = [c.key for c in index.query(q, 4, keep=lambda k: k != refused)]
    assert refused not in kept and kept[:3] == best[1:4]
