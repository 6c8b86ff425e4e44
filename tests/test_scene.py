"""Scene features and geometric verification on real photos."""

from __future__ import annotations

from pathlib import Path

import pytest

from photocheck.decode import decode
from photocheck.similarity.scene import SceneFeatures, extract_scene_features, match_scene

from .conftest import data_file


def _features(relpath: str) -> SceneFeatures:
    photo = decode(data_file(relpath).read_bytes(), max_pixels=120_000_000)
    return extract_scene_features(photo.grey)


def test_roundtrip_and_size() -> None:
    f = _features("buildings/opensfm_lund/12.jpg")
    raw = f.to_bytes()
    assert len(raw) <= 100_000
    g = SceneFeatures.from_bytes(raw)
    assert (g.width, g.height, len(g)) == (f.width, f.height, len(f))
    assert abs(g.points - f.points).max() <= 1 / 32
    assert (g.descriptors == f.descriptors).all()
    assert g.views is not None and g.octaves is not None and g.angles is not None
    assert f.views is not None and f.octaves is not None and f.angles is not None
    assert (g.views == f.views).all() and (g.octaves == f.octaves).all()
    assert g.squeezes == f.squeezes
    turn = (g.angles - f.angles + 180) % 360 - 180
    assert abs(turn).max() <= 360 / 512 + 1e-3
    assert match_scene(g, f).is_same_scene


def test_old_format_refused() -> None:
    """Version-1 blobs (no orientations) are refused with a clear error, not misread."""
    raw = bytearray(_features("buildings/opensfm_lund/12.jpg").to_bytes())
    raw[4] = 1
    with pytest.raises(ValueError, match="version 1"):
        SceneFeatures.from_bytes(bytes(raw))


def test_truncated_refused() -> None:
    raw = _features("buildings/opensfm_lund/12.jpg").to_bytes()
    with pytest.raises(ValueError, match="scene features"):
        SceneFeatures.from_bytes(raw[:-1])


@pytest.mark.parametrize("bad", [b"", b"PCSF", b"XXXX" + b"\0" * 20])
def test_from_bytes_rejects_garbage(bad: bytes) -> None:
    with pytest.raises(ValueError, match="scene features"):
        SceneFeatures.from_bytes(bad)


def test_tiny_image_has_no_features() -> None:
    f = _features("exif/phones_gps/issue508_iphonexr_gps_1x1.jpg")
    assert len(f) == 0
    assert not match_scene(f, f).is_same_scene


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("buildings/opensfm_lund/12.jpg", "buildings/opensfm_lund/13.jpg"),
        (
            "buildings/strecha_herz_jesu/herz_jesu_0000.jpg",
            "buildings/strecha_herz_jesu/herz_jesu_0004.jpg",
        ),
        (  # a ~45° oblique view of the facade against the frontal one
            "buildings/strecha_herz_jesu/herz_jesu_0000.jpg",
            "buildings/strecha_herz_jesu/herz_jesu_0007.jpg",
        ),
        (
            "near_dup/exif_samples_hdr/canon_hdr_NO.jpg",
            "near_dup/exif_samples_hdr/canon_hdr_YES.jpg",
        ),
    ],
)
def test_same_scene(a: str, b: str) -> None:
    fa, fb = _features(a), _features(b)
    m = match_scene(fa, fb)
    assert m.is_same_scene, m
    evidence = m.evidence()
    assert 0 < evidence["inliers"] <= evidence["matches"], evidence  # type: ignore[operator]
    assert match_scene(fb, fa).inliers == m.inliers  # symmetric


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("buildings/opensfm_lund/01.jpg", "buildings/opensfm_lund/12.jpg"),
        ("buildings/opensfm_lund/12.jpg", "buildings/opensfm_lund/24.jpg"),
        # far apart on the street, sharing only its far end (the strongest non-matches)
        ("buildings/opensfm_lund/01.jpg", "buildings/opensfm_lund/10.jpg"),
        ("buildings/opensfm_lund/06.jpg", "buildings/opensfm_lund/13.jpg"),
        (
            "near_dup/imagededup_ukbench/ukbench00120.jpg",
            "near_dup/imagededup_ukbench/ukbench01380.jpg",
        ),
    ],
)
def test_different_houses_not_matched(a: str, b: str) -> None:
    m = match_scene(_features(a), _features(b))
    assert not m.is_same_scene, m


def test_old_format_needs_features_again(tmp_path: Path) -> None:
    """Version-1 rows are re-extracted like missing ones, not left never matching."""
    from photocheck.policy import default_policy
    from photocheck.similarity.scene import is_current_format
    from photocheck.store.blobs import LocalBlobStore
    from photocheck.store.scenes import OrbSceneMatcher

    grey = decode(
        data_file("buildings/opensfm_lund/12.jpg").read_bytes(), max_pixels=120_000_000
    ).grey
    matcher = OrbSceneMatcher(default_policy(), LocalBlobStore(tmp_path))
    current = matcher.features(grey)
    old = bytearray(current)
    old[4] = 1  # the version byte
    assert is_current_format(current) and not is_current_format(bytes(old))
    assert matcher.needs_features(None)
    assert matcher.needs_features(bytes(old))
    assert not matcher.needs_features(current)
    assert not matcher.needs_features(b"")  # undecodable original: tried once
    assert matcher.verify(bytes(old), current) is None
