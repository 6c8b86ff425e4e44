"""The same-photo check split around the write lock (``Intake.submit``): the index is
asked before the lock, and only the photos added since are compared inside it. A copy
committed in between must still be found."""

from __future__ import annotations

import io
from typing import Any

import httpx
from PIL import Image

from tests.conftest import data_file

from .conftest import LiveServer, loopback_client
from .test_session import GOOD_2, codes, setup_campaign


def _reencoded(relpath: str) -> bytes:
    """The same picture, other bytes and pixels: only PDQ says it is a copy."""
    out = io.BytesIO()
    Image.open(data_file(relpath)).convert("RGB").save(out, "JPEG", quality=70)
    return out.getvalue()


def _post(client: httpx.Client, headers: dict, household: str, data: bytes) -> httpx.Response:
    files = {"file": ("photo.jpg", data, "image/jpeg")}
    return client.post(f"/households/{household}/photos", files=files, headers=headers)


def test_copy_committed_between_the_query_and_the_lock(
    module_server: LiveServer, monkeypatch: Any
) -> None:
    with (
        loopback_client(module_server.url + "/api/v1", timeout=120) as outer,
        loopback_client(module_server.url + "/api/v1", timeout=120) as inner,
    ):
        _, v = setup_campaign(outer)
        intake = module_server.app_state.intake
        commit = intake.blobs.commit
        raced: list[httpx.Response] = []

        def commit_after_the_other(blob: Any) -> Any:
            # the outer upload has asked the index (empty) and not yet taken the lock:
            # the other household's copy is stored right now, in between
            if not raced:
                raced.append(httpx.Response(0))
                raced[0] = _post(inner, v["南村"], "C1", data_file(GOOD_2).read_bytes())
            return commit(blob)

        monkeypatch.setattr(intake.blobs, "commit", commit_after_the_other)
        r = _post(outer, v["南村"], "C2", _reencoded(GOOD_2))
        monkeypatch.undo()

    first = raced[0]
    assert first.status_code == 201 and "DUPLICATE_PHOTO" not in codes(first.json()), first.text
    assert r.status_code == 201, r.text
    body = r.json()
    assert "DUPLICATE_PHOTO" in codes(body), body
    match = body["matches"][0]
    assert match["household_id"] == "C1" and match["evidence"]["via"] == "pdq", match
