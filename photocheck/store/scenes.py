"""Same-scene verification for the intake: XFeat features (``similarity.xfeat_scene``,
the default: ~63 ms and ~135 kB per photo; a verified pair ~9 ms CPU when the cheap
stage settles it, ~300 ms more when LighterGlue must), made once per photo and kept in
``photos.scene``; or, when the policy says ``scene_matcher = "orb"``, ORB
(``similarity.scene``: ~5 ms and ~42 kB per photo, ~11 ms a pair, lower recall).
``scene_matcher`` picks one.

Features are made in the scene-check job after the answer (never on the request path),
from the working image the checks already decoded, so a candidate's features are
always a row away. ``features_of_blob`` decodes an original again: only the start-up
backfill and a restarted check use it. The ONNX sessions load once per process, on
the first photo that needs them (``XFeatRuntime.shared``).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ..decode import decode
from ..errors import BlobNotFound, DecodeError
from ..policy import Policy
from ..similarity import scene as orb
from ..similarity import xfeat_scene as xfeat
from ..similarity.scene import (
    SceneFeatures,
    extract_scene_features,
    is_current_format,
    match_scene,
)
from .blobs import BlobStore

__all__ = ["OrbSceneMatcher", "XFeatSceneMatcher", "scene_matcher"]


class OrbSceneMatcher:
    """``SceneMatcher`` over ORB + homography, with the policy's thresholds."""

    format_prefix = orb.FORMAT_PREFIX  # what current stored features start with

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


class XFeatSceneMatcher(OrbSceneMatcher):
    """``SceneMatcher`` over XFeat + fundamental matrix, LighterGlue for the pairs the
    cheap stage leaves open (the default), with the policy's ``xfeat_*`` thresholds.
    Its features carry their own magic, so a switch between matchers makes every
    photo's features again (``needs_features``)."""

    format_prefix = xfeat.FORMAT_PREFIX

    def features(self, grey: np.ndarray) -> bytes:
        return xfeat.extract_scene_features(grey).to_bytes()

    def needs_features(self, stored: bytes | None) -> bool:
        return stored is None or (stored != b"" and not xfeat.is_current_format(stored))

    def verify(self, a: bytes, b: bytes) -> dict[str, Any] | None:
        """Evidence when the two feature sets show the same scene, else None."""
        try:
            fa, fb = _xfeat_features(a), _xfeat_features(b)
        except ValueError:
            return None
        result = xfeat.match_scene(fa, fb, self.policy.similarity)
        if not result.is_same_scene:
            return None
        evidence: dict[str, Any] = dict(result.evidence())
        evidence["inlier_pairs"] = np.round(result.pairs, 1).tolist()  # the match picture
        evidence["size_a"], evidence["size_b"] = [fa.width, fa.height], [fb.width, fb.height]
        return evidence


@functools.lru_cache(maxsize=32)
def _xfeat_features(data: bytes) -> xfeat.SceneFeatures:
    """Stored XFeat features, decoded once for the scene check's run of pairs (the
    probe's against each of up to 16 candidates; ~0.5 ms each time otherwise)."""
    return xfeat.SceneFeatures.from_bytes(data)


def scene_matcher(policy: Policy, blobs: BlobStore) -> OrbSceneMatcher:
    """The matcher the policy's ``[similarity] scene_matcher`` names (XFeat by default)."""
    if policy.similarity.scene_matcher == "orb":
        return OrbSceneMatcher(policy, blobs)
    return XFeatSceneMatcher(policy, blobs)
