"""The content model: loads once, classifies real photos sensibly, fails clearly."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from photocheck.decode import decode
from photocheck.errors import ModelError
from photocheck.model import DEFAULT_MODEL_PATH, ContentModel

from .conftest import data_file


def _photo(relpath: str):
    return decode(data_file(relpath).read_bytes(), max_pixels=120_000_000)


def test_model_file_matches_readme_checksum() -> None:
    readme = (DEFAULT_MODEL_PATH.parent / "README.md").read_text("utf-8")
    digest = hashlib.sha256(DEFAULT_MODEL_PATH.read_bytes()).hexdigest()
    assert digest in readme
    assert DEFAULT_MODEL_PATH.stat().st_size < 25_000_000


def test_version_names_the_file_hash(model: ContentModel) -> None:
    assert model.version.startswith("efficientnet_lite0-")
    digest = hashlib.sha256(DEFAULT_MODEL_PATH.read_bytes()).hexdigest()
    assert model.version.endswith(digest[:12])


@pytest.mark.parametrize(
    ("relpath", "expected"),
    [
        ("near_dup/imagededup_ukbench/ukbench09012.jpg", "acoustic guitar"),
        ("bad_input/exposure/exposure_ok.jpg", "tiger cat"),
        ("bad_input/signs_text_photos/street_signs_french.jpg", "street sign"),
        ("buildings/strecha_herz_jesu/herz_jesu_0004.jpg", "monastery"),
    ],
)
def test_top_label(model: ContentModel, relpath: str, expected: str) -> None:
    scores = model.scores(_photo(relpath))
    assert scores.top[0][0] == expected, scores.top


def test_scores_are_probabilities_with_embedding(model: ContentModel) -> None:
    scores = model.scores(_photo("buildings/opensfm_lund/01.jpg"))
    assert 0.0 <= scores.building <= 1.0 and 0.0 <= scores.screen <= 1.0
    assert scores.building + scores.screen + scores.street <= 1.0 + 1e-6
    assert scores.embedding is not None and len(scores.embedding) == 1280
    assert np.isfinite(scores.embedding).all()


def test_embedding_is_closer_for_the_same_building(model: ContentModel) -> None:
    def emb(rel: str) -> np.ndarray:
        v = np.asarray(model.scores(_photo(rel)).embedding)
        return v / np.linalg.norm(v)

    a = emb("buildings/strecha_herz_jesu/herz_jesu_0000.jpg")
    b = emb("buildings/strecha_herz_jesu/herz_jesu_0007.jpg")
    other = emb("near_dup/imagededup_ukbench/ukbench09012.jpg")
    assert a @ b > a @ other + 0.1


def test_missing_model_is_a_clear_error(tmp_path) -> None:
    model = ContentModel(tmp_path / "nope.onnx")
    with pytest.raises(ModelError, match="cannot be read"):
        model.scores(_photo("buildings/opensfm_lund/01.jpg"))


def test_corrupt_model_is_a_clear_error(tmp_path) -> None:
    bad = tmp_path / "efficientnet_lite0.onnx"
    bad.write_bytes(DEFAULT_MODEL_PATH.read_bytes()[:100_000])
    (tmp_path / "imagenet_classes.txt").write_text(
        (DEFAULT_MODEL_PATH.parent / "imagenet_classes.txt").read_text("utf-8"), "utf-8"
    )
    with pytest.raises(ModelError, match="not a usable ONNX model"):
        ContentModel(bad).load()
