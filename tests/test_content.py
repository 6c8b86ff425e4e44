"""NO_HOUSE and SCREEN_PHOTO on the labelled developer photos."""

from __future__ import annotations

import pytest

from photocheck.reasons import ReasonCode

from .conftest import DATA, load_expectations

SCREENS = sorted(
    str(p.relative_to(DATA))
    for folder in ("screen_photos_moire", "screenshots_graphics", "signs_text_photos")
    for p in (DATA / "bad_input" / folder).glob("*")
)
NON_HOUSES = [
    "near_dup/imagededup_ukbench/ukbench00120.jpg",
    "bad_input/exposure/exposure_ok.jpg",
    "exif/edited_software/photoshop_4.jpg",
]
BUILDINGS = sorted(
    e.relpath
    for e in load_expectations()
    if e.relpath.startswith("buildings/") and e.none_of & {"NO_HOUSE", "SCREEN_PHOTO"}
)


def test_labelled_sets_present() -> None:
    assert len(SCREENS) == 10 and len(BUILDINGS) >= 36


@pytest.mark.parametrize("relpath", SCREENS)
def test_screens_and_signs_rejected(relpath: str, reports) -> None:
    codes = reports[relpath].codes
    assert codes & {ReasonCode.NO_HOUSE, ReasonCode.SCREEN_PHOTO}, codes


@pytest.mark.parametrize("relpath", [s for s in SCREENS if "signs_text" not in s])
def test_screens_are_screen_photos(relpath: str, reports) -> None:
    assert ReasonCode.SCREEN_PHOTO in reports[relpath].codes


@pytest.mark.parametrize("relpath", NON_HOUSES)
def test_non_house_subjects(relpath: str, reports) -> None:
    assert ReasonCode.NO_HOUSE in reports[relpath].codes


@pytest.mark.parametrize("relpath", BUILDINGS)
def test_buildings_pass_content(relpath: str, reports) -> None:
    codes = reports[relpath].codes
    assert not codes & {ReasonCode.NO_HOUSE, ReasonCode.SCREEN_PHOTO}, codes


def test_score_ordering(reports, policy) -> None:
    """Every labelled building scores above every labelled non-house photo."""
    house = [reports[r].metrics["house_score"] for r in BUILDINGS]
    others = [reports[r].metrics["house_score"] for r in SCREENS + NON_HOUSES]
    assert min(house) > policy.content.house_min_score > max(others)
    screen_b = [reports[r].metrics["screen_score"] for r in BUILDINGS]
    screen_s = [reports[r].metrics["screen_score"] for r in SCREENS]
    assert max(screen_b) < policy.content.screen_max_score < min(screen_s)


def test_metrics_present(reports) -> None:
    m = reports["buildings/opensfm_lund/01.jpg"].metrics
    for key in ("building_score", "screen_score", "house_score", "flat_fraction", "top_labels"):
        assert key in m
