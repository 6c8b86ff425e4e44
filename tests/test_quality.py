"""TOO_SMALL, BLURRY, TOO_DARK, TOO_BRIGHT on real photos, synthetic scenes and policy changes.

check_quality is called directly on decoded photos: it reads only the pixels and the
policy, so the content model is not needed here (test_expectations covers the pipeline).
"""

from __future__ import annotations

import dataclasses
import io

import cv2
import numpy as np
import pytest
from PIL import Image

from photocheck.checks import CheckInput
from photocheck.checks.quality import check_quality, measure_exposure, measure_sharpness
from photocheck.decode import DecodedPhoto, decode
from photocheck.metadata import Metadata
from photocheck.model import ContentScores
from photocheck.policy import Policy
from photocheck.reasons import ReasonCode

from .conftest import data_file

BLURRED = [
    "blur/kwentar_triplets/106_NIKON-D3400-35MM_F.JPG",
    "blur/kwentar_triplets/106_NIKON-D3400-35MM_M.JPG",
    "blur/kwentar_triplets/176_HONOR-7X_F.jpg",
    "blur/kwentar_triplets/176_HONOR-7X_M.jpg",
    "blur/oxford_bikes_blur/bikes_img4.ppm",
    "blur/oxford_bikes_blur/bikes_img6.ppm",
    "blur/qualipy/blurred_whole.jpg",
]
SHARP = [
    "blur/kwentar_triplets/106_NIKON-D3400-35MM_S.JPG",
    "blur/kwentar_triplets/176_HONOR-7X_S.jpg",
    "blur/oxford_bikes_blur/bikes_img1.ppm",
    "blur/qualipy/sharp_subject_blurred_context.jpg",
    "blur/qualipy/sharp_subject_bokeh_whole_blur_false_positive.jpg",
    "buildings/strecha_herz_jesu/herz_jesu_0000.jpg",
    "buildings/camera_corpus/fujifilm_ds7_2_japanese_house.jpg",
]
DARK = [
    "near_dup/oxford_leuven_light/leuven_img6.ppm",
    "bad_input/exposure/underexposed_building.jpg",
    "bad_input/exposure/canon1300d_almost_black.jpg",
    "bad_input/exposure/sony_dscp12_black.jpg",
]
NOT_DARK = [
    "near_dup/oxford_leuven_light/leuven_img1.ppm",
    "bad_input/exposure/exposure_ok.jpg",
    "buildings/strecha_herz_jesu/herz_jesu_0007.jpg",
]


def _photo(relpath: str, policy: Policy) -> DecodedPhoto:
    q = policy.quality
    return decode(
        data_file(relpath).read_bytes(), max_pixels=q.max_pixels, working_size=q.working_size
    )


def _synthetic(pixels: np.ndarray, policy: Policy) -> DecodedPhoto:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    q = policy.quality
    return decode(buf.getvalue(), max_pixels=q.max_pixels, working_size=q.working_size)


def _codes(photo: DecodedPhoto, policy: Policy) -> set[ReasonCode]:
    inp = CheckInput(
        photo=photo, meta=Metadata(), scores=ContentScores(building=1.0, screen=0.0), policy=policy
    )
    return {f.code for f in check_quality(inp).findings}


def _house_front(height: int = 600, width: int = 800) -> np.ndarray:
    """A plain wall with a door, two windows and a roof line: sharp, mostly flat."""
    rng = np.random.default_rng(3)
    img = np.full((height, width), 170, np.float32)
    img[: height // 4] = 215  # sky
    img[height // 4 : height // 4 + 12] = 60  # eaves
    img[height // 2 : height - 40, width // 2 - 50 : width // 2 + 50] = 70  # door
    for x in (width // 6, 4 * width // 6):
        img[height // 2 - 40 : height // 2 + 60, x : x + 110] = 90  # windows
    img += rng.normal(0, 1.5, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


# -- BLURRY -------------------------------------------------------------------------


@pytest.mark.parametrize("relpath", BLURRED)
def test_blurred_photos_are_blurry(relpath: str, policy: Policy) -> None:
    assert ReasonCode.BLURRY in _codes(_photo(relpath, policy), policy)


@pytest.mark.parametrize("relpath", SHARP)
def test_sharp_photos_and_bokeh_are_not_blurry(relpath: str, policy: Policy) -> None:
    assert ReasonCode.BLURRY not in _codes(_photo(relpath, policy), policy)


@pytest.mark.parametrize(
    ("sharp", "blurred"),
    [
        ("blur/kwentar_triplets/176_HONOR-7X_S.jpg", "blur/kwentar_triplets/176_HONOR-7X_F.jpg"),
        ("blur/oxford_bikes_blur/bikes_img1.ppm", "blur/oxford_bikes_blur/bikes_img4.ppm"),
        ("blur/oxford_bikes_blur/bikes_img4.ppm", "blur/oxford_bikes_blur/bikes_img6.ppm"),
    ],
)
def test_same_scene_sharper_scores_higher(sharp: str, blurred: str, policy: Policy) -> None:
    tile_contrast = policy.quality.blur_min_tile_contrast
    a = measure_sharpness(_photo(sharp, policy).grey, tile_contrast)
    b = measure_sharpness(_photo(blurred, policy).grey, tile_contrast)
    assert a is not None and b is not None
    assert a > b


def test_plain_wall_and_sky_are_not_blurry(policy: Policy) -> None:
    rng = np.random.default_rng(5)
    wall = np.clip(rng.normal(180, 1.5, (600, 800)), 0, 255).astype(np.uint8)
    sky = np.tile(np.linspace(120, 230, 600, dtype=np.float32)[:, None], (1, 800))
    for pixels in (wall, sky.astype(np.uint8)):
        photo = _synthetic(pixels, policy)
        assert measure_sharpness(photo.grey, policy.quality.blur_min_tile_contrast) is None
        assert ReasonCode.BLURRY not in _codes(photo, policy)


def test_sharp_house_front_passes_and_its_blurred_copies_fail(policy: Policy) -> None:
    house = _house_front()
    assert ReasonCode.BLURRY not in _codes(_synthetic(house, policy), policy)
    defocus = cv2.GaussianBlur(house, (0, 0), 3.0)
    assert ReasonCode.BLURRY in _codes(_synthetic(defocus, policy), policy)
    shake = cv2.filter2D(house, -1, np.full((1, 15), 1 / 15, np.float32))  # sideways shake
    assert ReasonCode.BLURRY in _codes(_synthetic(shake, policy), policy)


def test_sharpness_does_not_depend_on_contrast(policy: Policy) -> None:
    grey = _photo("buildings/opensfm_lund/05.jpg", policy).grey.astype(np.float32)
    low = (grey * 0.5 + 60).astype(np.uint8)
    tile_contrast = policy.quality.blur_min_tile_contrast
    full = measure_sharpness(grey.astype(np.uint8), tile_contrast)
    half = measure_sharpness(low, tile_contrast)
    assert full is not None and half is not None
    assert half == pytest.approx(full, rel=0.1)


def test_blur_threshold_comes_from_the_policy(policy: Policy) -> None:
    photo = _photo("blur/kwentar_triplets/176_HONOR-7X_F.jpg", policy)
    lenient = policy.replace(quality=dataclasses.replace(policy.quality, blur_min_sharpness=0.1))
    assert ReasonCode.BLURRY in _codes(photo, policy)
    assert ReasonCode.BLURRY not in _codes(photo, lenient)


# -- TOO_DARK / TOO_BRIGHT ----------------------------------------------------------


@pytest.mark.parametrize("relpath", DARK)
def test_dark_photos(relpath: str, policy: Policy) -> None:
    codes = _codes(_photo(relpath, policy), policy)
    assert ReasonCode.TOO_DARK in codes
    assert ReasonCode.TOO_BRIGHT not in codes


@pytest.mark.parametrize("relpath", NOT_DARK)
def test_normally_lit_photos(relpath: str, policy: Policy) -> None:
    codes = _codes(_photo(relpath, policy), policy)
    assert not codes & {ReasonCode.TOO_DARK, ReasonCode.TOO_BRIGHT}


def test_same_house_less_light_is_darker(policy: Policy) -> None:
    bright = measure_exposure(_photo("near_dup/oxford_leuven_light/leuven_img1.ppm", policy).grey)
    dark = measure_exposure(_photo("near_dup/oxford_leuven_light/leuven_img6.ppm", policy).grey)
    assert dark.highlight < bright.highlight
    assert dark.brightness < bright.brightness
    assert dark.dark_fraction > bright.dark_fraction


def test_washed_out_and_clipped_are_too_bright(policy: Policy) -> None:
    washed = np.clip(_house_front().astype(np.int16) + 120, 0, 255).astype(np.uint8)
    assert ReasonCode.TOO_BRIGHT in _codes(_synthetic(washed, policy), policy)
    clipped = _house_front()
    clipped[:400] = 255
    assert ReasonCode.TOO_BRIGHT in _codes(_synthetic(clipped, policy), policy)
    assert ReasonCode.TOO_BRIGHT not in _codes(_synthetic(_house_front(), policy), policy)


def test_never_both_dark_and_bright(policy: Policy) -> None:
    flat = np.full((600, 800), 140, np.uint8)  # every pixel in both ranges
    codes = _codes(_synthetic(flat, policy), policy)
    assert len(codes & {ReasonCode.TOO_DARK, ReasonCode.TOO_BRIGHT}) == 1


def test_dark_threshold_comes_from_the_policy(policy: Policy) -> None:
    photo = _photo("bad_input/exposure/underexposed_building.jpg", policy)
    lenient = policy.replace(quality=dataclasses.replace(policy.quality, dark_max_highlight=100.0))
    assert ReasonCode.TOO_DARK in _codes(photo, policy)
    assert ReasonCode.TOO_DARK not in _codes(photo, lenient)


# -- TOO_SMALL and metrics ----------------------------------------------------------


@pytest.mark.parametrize(("size", "small"), [((640, 480), False), ((639, 469), True)])
def test_too_small_boundary(size: tuple[int, int], small: bool, policy: Policy) -> None:
    w, h = size
    pixels = cv2.resize(_house_front(), (w, h), interpolation=cv2.INTER_AREA)
    assert (ReasonCode.TOO_SMALL in _codes(_synthetic(pixels, policy), policy)) is small


def test_every_measure_is_in_the_metrics(policy: Policy) -> None:
    photo = _photo("buildings/opensfm_lund/05.jpg", policy)
    inp = CheckInput(
        photo=photo, meta=Metadata(), scores=ContentScores(building=1.0, screen=0.0), policy=policy
    )
    metrics = check_quality(inp).metrics
    for key in ("megapixels", "sharpness", "brightness", "shadow", "highlight"):
        assert isinstance(metrics[key], float)
    assert 0.0 <= metrics["dark_fraction"] <= 1.0
    assert 0.0 <= metrics["bright_fraction"] <= 1.0
