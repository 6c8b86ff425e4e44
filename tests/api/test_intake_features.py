"""The same-scene check after the answer (``scene_check`` jobs): nothing is missed when
the process dies between the answer and the check, and old-format features are made
again by the backfill.

Each test needs an empty database (function-scoped ``server``) but only two villages in
two towns: the set-up imports just A1 (东村) and C3 (南村), not test_session's eight
households and three villages (each village account costs 4 argon2 hashes, ~0.27 s of
CPU each, to log in and change its initial password).
"""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from photocheck.similarity.xfeat_scene import SceneFeatures  # the default matcher's
from photocheck.store.intake import Intake
from photocheck.store.models import Photo, PhotoMatch

from .conftest import LiveServer, start_campaign
from .test_session import GOOD, HOUSEHOLDS, SAME_SCENE, codes, upload

# test_session's A1 and C3 (the two households these tests upload to), nothing else
TWO_HOUSEHOLDS = "".join(
    line
    for line in HOUSEHOLDS.splitlines(keepends=True)
    if line.startswith(("\ufeff", "A1,", "C3,"))
)


class _Lost:
    """A job queue that loses every job, as a process killed right after the answer."""

    def enqueue(self, kind: str, key: int) -> None:
        pass


def setup_campaign(client: httpx.Client) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    county, villages, out = start_campaign(client, TWO_HOUSEHOLDS)
    assert sorted(villages) == ["东村", "南村"], out
    return county, villages


def _scene(server: LiveServer, photo_id: int) -> bytes | None:
    with server.app_state.db.session() as session:
        return session.scalar(select(Photo.scene).where(Photo.id == photo_id))


def test_scene_check_resumed_at_start_up(server: LiveServer, client: httpx.Client) -> None:
    _, v = setup_campaign(client)
    first = upload(client, v["东村"], "A1", GOOD)
    assert first.status_code == 201, first.text
    assert server.app_state.intake.drain(timeout=120)
    server.app_state.intake.jobs = _Lost()
    r = upload(client, v["南村"], "C3", SAME_SCENE)  # A1's church, another spot
    assert r.status_code == 201 and r.json()["scene_check"]["status"] == "pending", r.text
    pending = client.get("/households/C3", headers=v["南村"]).json()
    assert pending["scene_check"]["status"] == "pending"
    assert "SAME_SCENE" not in codes(pending["current_photo"])

    server.restart()  # the start-up queues the unchecked photo again
    assert server.app_state.intake.drain(timeout=120)
    done = client.get("/households/C3", headers=v["南村"]).json()
    assert done["scene_check"] is None
    assert "SAME_SCENE" in codes(done["current_photo"]), done
    stored = _scene(server, r.json()["photo_id"])
    assert stored and len(SceneFeatures.from_bytes(stored)) > 100


def test_a_job_worker_without_an_index_finds_the_earlier_scene(
    server: LiveServer, client: httpx.Client
) -> None:
    """`photocheck worker` builds no duplicate index at start (``build_state(index=False)``):
    its scene check reads the earlier photos from the database first, so a check run there
    finds what one run in the serve process finds."""
    _, v = setup_campaign(client)
    first = upload(client, v["东村"], "A1", GOOD)
    assert first.status_code == 201, first.text
    state = server.app_state
    assert state.intake.drain(timeout=120)
    state.intake.jobs = _Lost()  # the check is left to the other process
    r = upload(client, v["南村"], "C3", SAME_SCENE)  # A1's church, another spot
    assert r.status_code == 201 and r.json()["scene_check"]["status"] == "pending", r.text

    worker = Intake(state.db, state.blobs, state.policy, scene=state.intake.scene, jobs=_Lost())
    assert len(worker.index) == 0
    worker.run_scene_check(r.json()["photo_id"])
    done = client.get("/households/C3", headers=v["南村"]).json()
    assert done["scene_check"] is None
    assert "SAME_SCENE" in codes(done["current_photo"]), done


def _church_twice_queued(
    server: LiveServer, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, dict[str, str]], int, int]:
    """A1's church, then the same church from another spot for C3, both checks left
    queued for other processes (this one's jobs are lost): the villages' headers, A1's
    and C3's photo ids."""
    _, v = setup_campaign(client)
    state = server.app_state
    assert state.intake.drain(timeout=120)
    monkeypatch.setattr(state.intake, "jobs", _Lost())
    first = upload(client, v["东村"], "A1", GOOD)
    r = upload(client, v["南村"], "C3", SAME_SCENE)
    assert first.status_code == r.status_code == 201, (first.text, r.text)
    a1, c3 = first.json()["photo_id"], r.json()["photo_id"]
    assert _scene(server, a1) is None  # A1: still queued
    return v, a1, c3


def test_a_worker_votes_for_an_earlier_photo_whose_check_is_still_queued(
    server: LiveServer, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Candidates come from descriptor votes over the county's stored features
    (``store.scenevotes``). An earlier photo whose own check has not run has no features
    in its row yet: a fresh worker's index makes them from its original instead of
    skipping it, so two uploads checked out of order by two processes still meet."""
    v, _, c3 = _church_twice_queued(server, client, monkeypatch)
    state = server.app_state
    worker = Intake(state.db, state.blobs, state.policy, scene=state.intake.scene, jobs=_Lost())
    worker.run_scene_check(c3)
    done = client.get("/households/C3", headers=v["南村"]).json()
    assert "SAME_SCENE" in codes(done["current_photo"]), done
    with state.db.session() as session:
        evidence = session.scalar(select(PhotoMatch.evidence).where(PhotoMatch.photo_id == c3))
    assert evidence is not None and evidence["via"] == "votes" and evidence["votes"] > 0, evidence
    assert worker.votes.counties() and worker.votes.memory_bytes() > 0


class _Counted:
    """The scene matcher, counting feature extractions (XFeat's ~70 ms CPU each)."""

    def __init__(self, real: object) -> None:
        self.real, self.extractions = real, 0

    def features(self, grey: object) -> bytes:
        self.extractions += 1
        return self.real.features(grey)  # type: ignore[attr-defined]

    def features_of_blob(self, sha256: str) -> bytes | None:  # its decode, counted features
        return type(self.real).features_of_blob(self, sha256)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)


def test_a_candidates_features_made_by_another_check_are_stored_and_reused(
    server: LiveServer, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a job backlog a check meets candidates whose own check has not run: it makes
    their features from the original and stores them on the candidate's row, so the
    candidate's own check, run by another process, makes none (before: once per check
    that had it as a candidate, and again for its own check)."""
    v, a1, c3 = _church_twice_queued(server, client, monkeypatch)
    state = server.app_state

    # two job processes (no working images held, as after the answer elsewhere)
    counted = _Counted(state.intake.scene)
    w1 = Intake(state.db, state.blobs, state.policy, scene=counted, jobs=_Lost())  # type: ignore[arg-type]
    w2 = Intake(state.db, state.blobs, state.policy, scene=counted, jobs=_Lost())  # type: ignore[arg-type]
    w1.run_scene_check(c3)
    assert counted.extractions == 2  # C3's own and A1's (once, though voted and verified)
    stored = _scene(server, a1)
    assert stored and SceneFeatures.from_bytes(stored)
    assert w1.features_stored == 2 and _scene(server, c3)  # C3's stored before verifying
    done = client.get("/households/C3", headers=v["南村"]).json()
    assert "SAME_SCENE" in codes(done["current_photo"]), done

    w2.run_scene_check(a1)  # A1's own check: its stored features, none made
    assert counted.extractions == 2
    assert _scene(server, a1) == stored  # kept as stored first
    with state.db.session() as session:
        assert session.scalar(select(Photo.scene_checked).where(Photo.id == a1))
    # the first stored wins: another process's (identical) result is dropped
    assert w2._store_features(a1, b"PCXF-other") == stored
    assert _scene(server, a1) == stored and w2.features_stored == 0


def test_backfill_remakes_features_of_an_older_format(
    server: LiveServer, client: httpx.Client
) -> None:
    _, v = setup_campaign(client)
    first = upload(client, v["东村"], "A1", GOOD)
    assert first.status_code == 201, first.text
    photo_id = first.json()["photo_id"]
    intake = server.app_state.intake
    assert intake.drain(timeout=60)
    current = _scene(server, photo_id)
    assert current and SceneFeatures.from_bytes(current)
    old = b"PCXF\x00" + current[5:]  # the same blob claiming an older format version
    with server.app_state.db.write() as session:
        row = session.get(Photo, photo_id)
        assert row is not None
        row.scene = old
        session.commit()

    assert intake.backfill_scene_features() >= 1
    remade = _scene(server, photo_id)
    assert remade is not None and remade != old and SceneFeatures.from_bytes(remade)
    assert intake.backfill_scene_features() == 0  # nothing left to remake


def test_switching_to_orb_remakes_xfeat_features(server: LiveServer, client: httpx.Client) -> None:
    """The stored format names its matcher: an intake switched to ORB
    (``scene_matcher = "orb"``) makes the default XFeat features again, as ORB ones, once."""
    from photocheck.similarity import scene as orb
    from photocheck.store.scenes import OrbSceneMatcher

    _, v = setup_campaign(client)
    first = upload(client, v["东村"], "A1", GOOD)
    assert first.status_code == 201, first.text
    photo_id = first.json()["photo_id"]
    intake = server.app_state.intake
    assert intake.drain(timeout=60)
    xfeat = _scene(server, photo_id)
    assert xfeat and SceneFeatures.from_bytes(xfeat)
    assert intake.backfill_scene_features() == 0  # XFeat's features are current for XFeat
    intake.scene = OrbSceneMatcher(intake.policy, intake.blobs)
    assert intake.backfill_scene_features() >= 1
    remade = _scene(server, photo_id)
    assert remade and orb.is_current_format(remade)
    assert len(orb.SceneFeatures.from_bytes(remade)) > 100
    assert intake.backfill_scene_features() == 0
