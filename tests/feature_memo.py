"""XFeat features made once per distinct image, and pairs verified once, per test session.

Extraction is a pure function of the grey pixels (~63 ms a photo) and verification a
pure function of the two feature sets and the policy (~30 ms, ~300 ms more when
LighterGlue must look); the suite feeds the same real photos to `photocheck dedup`, to
the service's scene checks and to the matcher tests again and again, and both paths
verify many of the same pairs from the same stored-precision features. The memos are
keyed by digests of exactly those inputs (pixels and shape; both features' bytes in
order, and the similarity policy), so anything decoded or stored differently is
computed again: they return what the function would, only once.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from photocheck.policy import SimilarityPolicy
from photocheck.similarity import xfeat_scene

MAX_ENTRIES = 600  # ~0.3 MB each; beyond this extraction simply runs again
MAX_MATCHES = 20_000  # ~a few kB each (150 evidence pairs)

Extract = Callable[[np.ndarray], xfeat_scene.SceneFeatures]


class FeatureMemo:
    def __init__(self, extract: Extract) -> None:
        self._extract = extract
        self._memo: dict[tuple[tuple[int, ...], bytes], xfeat_scene.SceneFeatures] = {}
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def __call__(self, grey: np.ndarray) -> xfeat_scene.SceneFeatures:
        key = (
            grey.shape,
            hashlib.blake2b(np.ascontiguousarray(grey).tobytes(), digest_size=16).digest(),
        )
        with self._lock:
            found = self._memo.get(key)
            if found is not None:
                self.hits += 1
                return found
            self.misses += 1
        made = self._extract(grey)
        made.points.setflags(write=False)  # shared from now on
        made.descriptors.setflags(write=False)
        with self._lock:
            if len(self._memo) < MAX_ENTRIES:
                self._memo.setdefault(key, made)
        return made


Match = Callable[..., xfeat_scene.SceneMatch]


class MatchMemo:
    def __init__(self, match: Match) -> None:
        self._match = match
        self._memo: dict[bytes, xfeat_scene.SceneMatch] = {}
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def __call__(
        self,
        a: xfeat_scene.SceneFeatures,
        b: xfeat_scene.SceneFeatures,
        policy: SimilarityPolicy | None = None,
    ) -> xfeat_scene.SceneMatch:
        digest = hashlib.blake2b(digest_size=16)
        for part in (a.to_bytes(), b"|", b.to_bytes(), b"|", repr(policy).encode()):
            digest.update(part)
        key = digest.digest()
        with self._lock:
            found = self._memo.get(key)
            if found is not None:
                self.hits += 1
                return found
            self.misses += 1
        made = self._match(a, b, policy)
        with self._lock:
            if len(self._memo) < MAX_MATCHES:
                self._memo.setdefault(key, made)
        return made


@pytest.fixture(scope="session", autouse=True)
def xfeat_feature_memo() -> Iterator[tuple[FeatureMemo, MatchMemo]]:
    features = FeatureMemo(xfeat_scene.extract_scene_features)
    matches = MatchMemo(xfeat_scene.match_scene)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(xfeat_scene, "extract_scene_features", features)
        patch.setattr(xfeat_scene, "match_scene", matches)
        yield features, matches
