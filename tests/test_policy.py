"""The policy file: defaults load, unknown or ill-typed keys are refused clearly."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from photocheck import PolicyError, ReasonCode, Severity, default_policy, load_policy


def test_default_policy_has_version_and_design_defaults() -> None:
    policy = default_policy()
    assert policy.version
    assert policy.quality.min_pixels == 300_000
    assert policy.metadata.earliest_capture == dt.date(2010, 1, 1)
    assert policy.severity_of(ReasonCode.BLURRY) is Severity.REJECT
    assert policy.severity_of(ReasonCode.TILTED) is Severity.REVIEW


def test_policy_file_overrides_severity_and_threshold(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(
        'version = "test-1"\n[severity]\nEDITED = "reject"\n[quality]\nmin_pixels = 1000\n',
        encoding="utf-8",
    )
    policy = load_policy(path)
    assert policy.version == "test-1"
    assert policy.severity_of(ReasonCode.EDITED) is Severity.REJECT
    assert policy.quality.min_pixels == 1000
    # untouched values keep their defaults
    assert policy.quality.max_pixels == default_policy().quality.max_pixels


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[quality]\nmin_pixels = 1\n", "version"),
        ('version = "x"\n[quality]\nmin_pixel = 1\n', "unknown keys: min_pixel"),
        ('version = "x"\n[quality]\nmin_pixels = "many"\n', "must be int"),
        ('version = "x"\n[severity]\nBLURRY = "maybe"\n', "BLURRY"),
        ('version = "x"\n[severity]\nNOT_A_CODE = "reject"\n', "NOT_A_CODE"),
        ('version = "x"\n[colour]\nx = 1\n', "unknown sections: colour"),
        ("version = = 1\n", "cannot load policy"),
        ('version = "x"\n[similarity]\nscene_matcher = "sift"\n', "scene_matcher must be one of"),
        ('version = "x"\n[similarity]\nscene_matcher = 1\n', "scene_matcher must be str"),
        ('version = "x"\n[similarity]\nxfeat_min_inliers = 9.5\n', "must be int"),
        ('version = "x"\n[similarity]\nxfeat_match_prob = 1.5\n', "xfeat_match_prob must be"),
    ],
)
def test_bad_policy_is_refused_with_a_specific_message(
    tmp_path: Path, text: str, match: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError, match=match):
        load_policy(path)


def test_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot load policy"):
        load_policy(tmp_path / "nope.toml")


def test_scene_matcher_is_xfeat_by_default_and_orb_on_request(tmp_path: Path) -> None:
    """XFeat (two stages) is the default; ORB stays selectable with its own keys."""
    sim = default_policy().similarity
    assert sim.scene_matcher == "xfeat"
    assert sim.xfeat_nn_min_inliers < sim.xfeat_nn_same_inliers
    assert (sim.scene_min_inliers, sim.scene_min_inlier_ratio) == (27, 0.25)
    path = tmp_path / "p.toml"
    path.write_text('version = "x"\n[similarity]\nscene_matcher = "orb"\n', encoding="utf-8")
    assert load_policy(path).similarity.scene_matcher == "orb"
