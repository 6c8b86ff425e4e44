"""Same-scene verification for the intake: ORB features (``similarity.scene``), made
once per photo and kept in ``photos.scene``.

Features cost ~5 ms and ~42 kB per photo. They are made when a photo is stored, from
the working image the checks already decoded, so a candidate's features are always a
row away and the request path never decodes a stored original. ``features_of_blob``
decodes an original again: only the start-up backfill of photos stored before uses it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..decode import decode
from ..errors import BlobNotFound, DecodeError
from ..policy import Policy
from ..similarity.scene import (
    SceneFeatures,
    extract_scene_features,
    is_current_format,
    match_scene,
)
from .blobs import BlobStore

__all__ = ["OrbSceneMatcher"]


class OrbSceneMatcher:
    """``SceneMatcher`` over ORB + homography, with the policy's thresholds."""

    def __init__(self, policy: Policy, blobs: BlobStore) -> None:
        self.policy, self.blobs = policy, blobs

    def features(self, grey: np.ndarray) -> bytes:
        return extract_scene_features(grey).to_bytes()

    def features_of_blob(self, sha256: str) -> bytes | None:
        """Features of a stored original (backfill only); None if it is gone or cannot be
        decoded. A store that is down raises ``BlobStoreUnavailable`` (nothing is marked
        as tried)."""
        try:
            data = self.blobs.read(self.blobs.relpath(sha256))
            photo = decode(
                data,
                max_pixels=self.policy.quality.max_pixels,
                max_bytes=self.policy.quality.max_decode_bytes,
                working_size=self.policy.quality.working_size,
            )
        except (BlobNotFound, DecodeError):
            return None
        return self.features(photo.grey)

    def needs_features(self, stored: bytes | None) -> bool:
        """Whether a photo's stored features must be made (again): none yet, or an old
        format ``verify`` would refuse, so the photo would silently never match. Empty
        bytes mark an original that could not be decoded: tried once, not again."""
        return stored is None or (stored != b"" and not is_current_format(stored))

    def verify(self, a: bytes, b: bytes) -> dict[str, Any] | None:
        """Evidence when the two feature sets show the same scene, else None."""
        try:
            fa, fb = SceneFeatures.from_bytes(a), SceneFeatures.from_bytes(b)
        except ValueError:
            return None
        result = match_scene(fa, fb, self.policy.similarity)
        if not result.is_same_scene:
            return None
        evidence: dict[str, Any] = dict(result.evidence())
        if result.pairs is not None:  # for the audit's match picture (engine docstring)
            evidence["inlier_pairs"] = np.round(result.pairs, 1).tolist()
            evidence["size_a"], evidence["size_b"] = [fa.width, fa.height], [fb.width, fb.height]
        return evidence
