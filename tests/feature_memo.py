"""XFeat features made once per distinct image in a test session.

Extraction is a pure function of the grey pixels (~63 ms a photo), and the suite feeds
the same real photos to `photocheck dedup`, to the service's scene checks and to the
matcher tests again and again. The memo is keyed by a digest of the pixels and their
shape, so a photo decoded differently is extracted again: it returns exactly what
extraction would, only once.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from photocheck.similarity import xfeat_scene

MAX_ENTRIES = 600  # ~0.3 MB each; beyond this extraction simply runs again

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


@pytest.fixture(scope="session", autouse=True)
def xfeat_feature_memo() -> Iterator[FeatureMemo]:
    memo = FeatureMemo(xfeat_scene.extract_scene_features)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(xfeat_scene, "extract_scene_features", memo)
        yield memo
