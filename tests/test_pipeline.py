"""check_photo's flow: overlapped steps give the same report as the steps run alone."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import pytest

from photocheck import check_photo
from photocheck.decode import decode
from photocheck.errors import ModelError
from photocheck.fingerprints import phash_from_grey, pixel_digest
from photocheck.model import ContentModel
from photocheck.reasons import ReasonCode

from .conftest import data_file

PHOTOS = (
    "buildings/opensfm_lund/01.jpg",
    "exif/phones_gps/nokia_lumia800_gps.jpg",
    "bad_input/exposure/exposure_ok.jpg",
)


def test_hashes_match_the_standalone_functions(policy, model) -> None:
    data = data_file(PHOTOS[0]).read_bytes()
    report = check_photo(data, policy=policy, model=model)
    photo = decode(data, max_pixels=policy.quality.max_pixels,
                   working_size=policy.quality.working_size)  # fmt: skip
    assert report.fingerprint.sha256 == hashlib.sha256(data).hexdigest()
    assert report.fingerprint.pixel_sha256 == pixel_digest(photo)
    assert report.fingerprint.phash == phash_from_grey(photo.grey)
    assert report.scores == model.scores(photo)


def test_a_known_digest_is_used_not_recomputed(policy, model) -> None:
    """The upload service passes the digest it computed while streaming; the report
    must carry it (and otherwise be the same as when check_photo hashes itself)."""
    data = data_file(PHOTOS[0]).read_bytes()
    own = check_photo(data, policy=policy, model=model)
    given = check_photo(data, policy=policy, model=model, sha256=own.fingerprint.sha256)
    assert given.fingerprint == own.fingerprint
    assert given.reasons == own.reasons
    marker = "0" * 64  # what the caller says is what the report says: no second hash
    assert check_photo(data, policy=policy, model=model, sha256=marker).fingerprint.sha256 == (
        marker
    )


def test_unreadable_still_hashes_the_bytes(policy, model) -> None:
    data = b"\xff\xd8\xff\xe0 not really a jpeg"
    report = check_photo(data, policy=policy, model=model)
    assert ReasonCode.UNREADABLE in report.codes
    assert report.fingerprint.sha256 == hashlib.sha256(data).hexdigest()


def test_model_error_reaches_the_caller(policy, tmp_path) -> None:
    """The model runs on a helper thread; its failure must still surface, unchanged."""
    data = data_file(PHOTOS[0]).read_bytes()
    with pytest.raises(ModelError, match="cannot be read"):
        check_photo(data, policy=policy, model=ContentModel(tmp_path / "missing.onnx"))


def test_parallel_callers_get_the_serial_answers(policy, model) -> None:
    blobs = [data_file(p).read_bytes() for p in PHOTOS] * 3

    def summary(data: bytes) -> tuple:
        r = check_photo(data, policy=policy, model=model)
        return r.verdict, sorted(c.value for c in r.codes), r.fingerprint, r.scores

    serial = [summary(d) for d in blobs]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(summary, blobs)) == serial
