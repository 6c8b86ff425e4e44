"""XFeat features made once per distinct image, and pairs matched once, per test session.

Extraction is a pure function of the grey pixels (~63 ms a photo) and verification a
pure function of the two feature sets and the policy (~30 ms, ~300 ms more when
LighterGlue must look); the suite feeds the same real photos to `photocheck dedup`, to
the service's scene checks and to the matcher tests again and again, and both paths
verify many of the same pairs from the same stored-precision features.

``match_scene(a, b)`` is memoised as called; its two costly parts, the mutual nearest
descriptors and LighterGlue's assignments, run in a fixed order of the pair
(``xfeat_scene._ordered``), so they are memoised apart: the CLI asks (earlier, later)
and the service's scene check (new photo, earlier one), and the second asks the same
of both. The memos are keyed by digests of exactly the inputs (pixels and shape; the
feature arrays and sizes; the similarity policy or the probability floor), so anything
decoded or stored differently is computed again: they return what the function
would, only once.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
import pytest

from photocheck.similarity import xfeat_scene
from photocheck.similarity.xfeat_scene import SceneFeatures

MAX_FEATURES = 600  # ~0.3 MB each; beyond this extraction simply runs again
MAX_MATCHES = 20_000  # ~a few kB each (150 evidence pairs, or two index arrays)

R = TypeVar("R")


_FEATURE_DIGESTS: weakref.WeakKeyDictionary[SceneFeatures, bytes] = weakref.WeakKeyDictionary()
_DIGESTS_LOCK = threading.Lock()


def _digest(*parts: object) -> bytes:
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        if isinstance(part, np.ndarray):
            part = np.ascontiguousarray(part)
            digest.update(f"{part.dtype.str}{part.shape}".encode())
            digest.update(part.data)
        elif isinstance(part, SceneFeatures):
            digest.update(_feature_digest(part))
        else:
            digest.update(repr(part).encode())
        digest.update(b"|")
    return digest.digest()


def _feature_digest(features: SceneFeatures) -> bytes:
    """A feature set's digest, once per object (a pair's memos ask up to four times;
    hashing its 260 kB each time cost ~3 ms a pair). Its arrays are frozen with it, so
    the object cannot change under its digest."""
    with _DIGESTS_LOCK:
        found = _FEATURE_DIGESTS.get(features)
    if found is None:
        _freeze(features)
        size = f"{features.width}x{features.height}"
        found = _digest(size, features.points, features.descriptors)
        with _DIGESTS_LOCK:
            _FEATURE_DIGESTS[features] = found
    return found


class Memo(Generic[R]):
    """``fn``'s results by ``_digest`` of its arguments; ``hits`` / ``misses`` counted."""

    def __init__(self, fn: Callable[..., R], limit: int) -> None:
        self._fn = fn
        self._limit = limit
        self._memo: dict[bytes, R] = {}
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def __call__(self, *args: Any, **kwargs: Any) -> R:
        key = _digest(*args, *sorted(kwargs.items()))
        with self._lock:
            if key in self._memo:
                self.hits += 1
                return self._memo[key]
            self.misses += 1
        made = self._fn(*args, **kwargs)
        _freeze(made)  # shared from now on
        with self._lock:
            if len(self._memo) < self._limit:
                self._memo.setdefault(key, made)
        return made


def _freeze(value: object) -> None:
    if isinstance(value, np.ndarray):
        value.setflags(write=False)
    elif isinstance(value, tuple):
        for part in value:
            _freeze(part)
    elif isinstance(value, SceneFeatures):
        _freeze((value.points, value.descriptors))


@dataclass(frozen=True)
class Memos:
    features: Memo[SceneFeatures]  # extract_scene_features(grey)
    matches: Memo[xfeat_scene.SceneMatch]  # match_scene(a, b, policy), as called
    nearest: Memo[tuple[np.ndarray, np.ndarray]]  # _mutual_nn(first, second)
    glue: Memo[tuple[np.ndarray, np.ndarray]]  # _glue_mutual(first, second, min_prob)
    inliers: Memo[np.ndarray]  # _fundamental_inliers(p1, p2), in the fixed order


@pytest.fixture(scope="session", autouse=True)
def xfeat_feature_memo() -> Iterator[Memos]:
    memos = Memos(
        Memo(xfeat_scene.extract_scene_features, MAX_FEATURES),
        Memo(xfeat_scene.match_scene, MAX_MATCHES),
        Memo(xfeat_scene._mutual_nn, MAX_MATCHES),
        Memo(xfeat_scene._glue_mutual, MAX_MATCHES),
        Memo(xfeat_scene._fundamental_inliers, MAX_MATCHES),
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(xfeat_scene, "extract_scene_features", memos.features)
        patch.setattr(xfeat_scene, "match_scene", memos.matches)
        patch.setattr(xfeat_scene, "_mutual_nn", memos.nearest)
        patch.setattr(xfeat_scene, "_glue_mutual", memos.glue)
        patch.setattr(xfeat_scene, "_fundamental_inliers", memos.inliers)
        yield memos
