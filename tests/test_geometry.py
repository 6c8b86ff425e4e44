"""TILTED: camera roll from vertical edges, on real and synthetically rolled photos."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from photocheck.checks.geometry import estimate_tilt
from photocheck.decode import decode
from photocheck.reasons import ReasonCode

from .conftest import DATA, data_file

BUILDINGS = sorted(str(p.relative_to(DATA)) for p in (DATA / "buildings").rglob("*.jpg"))
ROLL_TEST = [
    "buildings/opensfm_lund/01.jpg",
    "buildings/opensfm_lund/21.jpg",
    "buildings/camera_corpus/panasonic_fx7_apartment_facade.jpg",
    "buildings/camera_corpus/fujifilm_ds7_2_japanese_house.jpg",
    "buildings/strecha_herz_jesu/herz_jesu_0000.jpg",
]


def _roll(grey: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate by ``degrees`` (cv2: positive is counter-clockwise) and crop the black wedges."""
    h, w = grey.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    out = cv2.warpAffine(grey, m, (w, h), flags=cv2.INTER_LINEAR)
    t = math.radians(abs(degrees))
    f = 1 / (math.cos(t) + max(w, h) / min(w, h) * math.sin(t))
    cw, ch = int(w * f), int(h * f)
    x0, y0 = (w - cw) // 2, (h - ch) // 2
    return np.ascontiguousarray(out[y0 : y0 + ch, x0 : x0 + cw])


def _grey(relpath: str) -> np.ndarray:
    return decode(data_file(relpath).read_bytes(), max_pixels=120_000_000).grey


@pytest.mark.parametrize("relpath", ROLL_TEST)
def test_twelve_degrees_fires_two_does_not(relpath: str, policy) -> None:
    limit = policy.geometry.tilt_max_degrees
    grey = _grey(relpath)
    for degrees in (-12, 12):
        est = estimate_tilt(_roll(grey, degrees))
        assert est.reliable and abs(est.degrees) > limit, est
        # cv2's positive angle is counter-clockwise, ours clockwise
        assert np.sign(est.degrees) == -np.sign(degrees)
    for degrees in (-2, 2):
        est = estimate_tilt(_roll(grey, degrees))
        assert abs(est.degrees) <= limit, est


@pytest.mark.parametrize("relpath", BUILDINGS)
def test_buildings_not_tilted(relpath: str, reports) -> None:
    report = reports[relpath]
    assert ReasonCode.TILTED not in report.codes, report.metrics.get("tilt_degrees")


def test_exif_orientation_3_not_tilted(reports) -> None:
    report = reports["exif/phones_gps/apple_iphone5_gps_orient3.jpg"]
    assert ReasonCode.TILTED not in report.codes


def test_no_evidence_no_verdict() -> None:
    rng = np.random.default_rng(0)
    noise = cv2.GaussianBlur(rng.integers(0, 255, (600, 800), dtype=np.uint8), (9, 9), 0)
    assert not estimate_tilt(noise).reliable
    assert not estimate_tilt(np.full((600, 800), 128, np.uint8)).reliable
