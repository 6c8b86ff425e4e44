"""EXIF thumbnail vs main image, on real camera files from the developer set."""

from __future__ import annotations

import io

import exifread
import pytest
from PIL import Image

from photocheck.audit.thumbnail import compare_thumbnail
from photocheck.decode import decode
from tests.conftest import data_file

GENUINE = [
    "buildings/camera_corpus/panasonic_fx7_apartment_facade.jpg",
    "buildings/camera_corpus/canon_s30_house_street.jpg",
    "buildings/camera_corpus/kyocera_fcs3_modern_building.jpg",  # sideways thumbnail
    "exif/phones_gps/apple_iphone5_gps_orient3.jpg",  # Orientation=3
    "exif/gps_anomalies/samsung_i9000_gps_0_0.jpg",  # Orientation=6
    "exif/exif_samples/Nikon_D70.jpg",
    "drone/openmvg_palm_desert_dji_mini2/DJI_0045.JPG",
]


def thumbnail_of(data: bytes) -> bytes:
    tags = exifread.process_file(io.BytesIO(data), details=False)
    return tags["JPEGThumbnail"]


def load(rel: str) -> bytes:
    path = data_file(rel)
    if not path.exists():
        pytest.skip(f"test photo missing: {rel}")
    return path.read_bytes()


@pytest.mark.parametrize("rel", GENUINE)
def test_camera_thumbnail_matches_its_image(rel: str) -> None:
    data = load(rel)
    result = compare_thumbnail(thumbnail_of(data), decode(data, max_pixels=200_000_000))
    assert result is not None and result.matches, result


@pytest.mark.parametrize(
    ("thumb_from", "image_from"),
    [
        (GENUINE[0], GENUINE[1]),
        (GENUINE[1], GENUINE[0]),
        (GENUINE[3], GENUINE[5]),
        (
            "exif/exif_samples/Canon_40D.jpg",
            "buildings/camera_corpus/kodak_z1012_facade_person.jpg",
        ),
    ],
)
def test_other_files_thumbnail_does_not_match(thumb_from: str, image_from: str) -> None:
    result = compare_thumbnail(
        thumbnail_of(load(thumb_from)), decode(load(image_from), max_pixels=200_000_000)
    )
    assert result is not None and not result.matches, result


def _with_exif_of(donor: bytes, pixels_from: bytes) -> bytes:
    """A JPEG with ``pixels_from``'s picture and ``donor``'s whole EXIF block (including
    its thumbnail): what a swapped or retouched photo with kept metadata looks like."""
    with Image.open(io.BytesIO(donor)) as d:
        exif = d.info["exif"]
    with Image.open(io.BytesIO(pixels_from)) as im:
        out = io.BytesIO()
        im.convert("RGB").save(out, "JPEG", quality=90, exif=exif)
    return out.getvalue()


def test_swapped_picture_with_kept_exif_is_caught() -> None:
    donor = load(GENUINE[0])
    swapped = _with_exif_of(donor, load(GENUINE[1]))
    result = compare_thumbnail(thumbnail_of(swapped), decode(swapped, max_pixels=200_000_000))
    assert result is not None and not result.matches
    resaved = _with_exif_of(donor, donor)  # the control: same picture re-encoded
    result = compare_thumbnail(thumbnail_of(resaved), decode(resaved, max_pixels=200_000_000))
    assert result is not None and result.matches


def test_broken_thumbnail_is_no_evidence() -> None:
    photo = decode(load(GENUINE[0]), max_pixels=200_000_000)
    assert compare_thumbnail(b"\xff\xd8 not a jpeg", photo) is None


def test_upload_metrics_from_the_checks_own_decode(policy, model) -> None:
    """What the upload stores: the comparison from ``Report.photo`` (no second decode),
    read back by the audit exactly as it would have computed it."""
    from photocheck import check_photo
    from photocheck.audit.thumbnail import thumbnail_check_from_metrics, thumbnail_metrics

    def metrics_of(data: bytes) -> dict:
        report = check_photo(data, policy=policy, model=model)
        assert report.metadata is not None
        return thumbnail_metrics(report.photo, report.metadata.thumbnail)

    for rel in GENUINE:
        compared, check = thumbnail_check_from_metrics(metrics_of(load(rel)))
        assert compared and check is not None and check.matches, (rel, check)
    swapped = _with_exif_of(load(GENUINE[0]), load(GENUINE[1]))
    compared, check = thumbnail_check_from_metrics(metrics_of(swapped))
    assert compared and check is not None and not check.matches
    none = thumbnail_metrics(None, None)  # unreadable photo: compared, nothing found
    assert thumbnail_check_from_metrics(none) == (True, None)
    assert thumbnail_check_from_metrics({"width": 10}) == (False, None)  # stored before
