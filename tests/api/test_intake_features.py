"""Scene features made after the answer (``FeatureQueue``): a later upload still finds
the same scene while the earlier photo's features wait in the queue, and the queue
writes them to the row."""

from __future__ import annotations

import threading

import httpx
from sqlalchemy import select

from photocheck.similarity.scene import SceneFeatures
from photocheck.store.models import Photo

from .conftest import LiveServer
from .test_session import GOOD, SAME_SCENE, codes, setup_campaign, upload


def _scene(server: LiveServer, photo_id: int) -> bytes | None:
    with server.app_state.db.session() as session:
        return session.scalar(select(Photo.scene).where(Photo.id == photo_id))


def test_same_scene_found_while_features_are_queued(
    server: LiveServer, client: httpx.Client
) -> None:
    _, v = setup_campaign(client)
    queue = server.app_state.intake.features
    assert queue is not None
    # stand in for the background thread, so the features stay queued
    release = threading.Event()
    stand_in = threading.Thread(target=release.wait, daemon=True)
    stand_in.start()
    queue._thread = stand_in
    try:
        first = upload(client, v["东村"], "A1", GOOD)
        assert first.status_code == 201, first.text
        photo_id = first.json()["photo_id"]
        assert len(queue) == 1 and _scene(server, photo_id) is None  # answered before

        r = upload(client, v["南村"], "C3", SAME_SCENE)  # A1's church, another spot
        assert r.status_code == 201, r.text
        assert "SAME_SCENE" in codes(r.json()), r.text
        assert r.json()["matches"][0]["household_id"] == "A1"
        same_scene_id = r.json()["photo_id"]
        assert _scene(server, same_scene_id)  # had candidates: made before the answer
    finally:
        release.set()
        stand_in.join()
    queue.start()
    assert queue.drain(timeout=60)
    stored = _scene(server, photo_id)
    assert stored and len(SceneFeatures.from_bytes(stored)) > 100


def test_backfill_remakes_features_of_an_older_format(
    server: LiveServer, client: httpx.Client
) -> None:
    _, v = setup_campaign(client)
    first = upload(client, v["东村"], "A1", GOOD)
    assert first.status_code == 201, first.text
    photo_id = first.json()["photo_id"]
    intake = server.app_state.intake
    assert intake.features is None or intake.features.drain(timeout=60)
    current = _scene(server, photo_id)
    assert current and SceneFeatures.from_bytes(current)
    old = b"PCSF\x01" + current[5:]  # the same blob claiming format version 1
    with server.app_state.db.write() as session:
        row = session.get(Photo, photo_id)
        assert row is not None
        row.scene = old
        session.commit()

    assert intake.backfill_scene_features() >= 1
    remade = _scene(server, photo_id)
    assert remade is not None and remade != old and SceneFeatures.from_bytes(remade)
    assert intake.backfill_scene_features() == 0  # nothing left to remake
