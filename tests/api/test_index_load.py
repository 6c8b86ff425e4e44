"""A worker's fast start on PostgreSQL (``store.indexload``): the bulk read builds the
same index as the row-by-row read, a snapshot gives it back, a snapshot of another
database is refused, and a restarted server loads its snapshot and catches up with
the photos stored after it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from api.state import AppState
from photocheck.store.dupindex import DuplicateIndex
from photocheck.store.indexload import Snapshots, bulk_load
from photocheck.store.intake import Intake
from photocheck.store.repo import dup_entries

from .conftest import LiveServer, loopback_client, make_settings, pg_schema, seed_admin
from .test_intake_race import _post, _reencoded
from .test_session import GOOD, GOOD_2, ORIENT_A, ORIENT_B, codes, photo, setup_campaign

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_server(tmp_path: Path) -> Iterator[LiveServer]:
    with pg_schema() as url:
        settings = make_settings(tmp_path, url)
        seed_admin(settings)
        live = LiveServer(settings)
        live.start()
        yield live
        live.stop()


def _same(a: DuplicateIndex, b: DuplicateIndex, embedding_step: int = 0) -> None:
    """The same arrays; ``embedding_step``: the int8 embeddings may differ by that much
    (an index filled at upload reduced the model's float32 vector, not the stored float16)."""
    sa, sb = a.snapshot(), b.snapshot()
    assert sa.keys() == sb.keys()
    for key in sa:
        x, y = np.asarray(sa[key]), np.asarray(sb[key])
        if key == "embedding" and embedding_step:
            assert x.shape == y.shape
            assert np.abs(x.astype(int) - y.astype(int)).max() <= embedding_step
        else:
            assert np.array_equal(x, y), key


def _job_process_starts_from_the_snapshot(state: AppState, photo_id: int) -> None:
    """A job process (``photocheck worker``: no index built by ``build_state``) given a
    scene check: its index comes from the serve process's snapshot plus the one photo
    stored after it, not from every row, and equals a bulk read of the database."""
    job = Intake(
        state.db, state.blobs, state.policy, index_dir=state.settings.DATA_DIR / "dupindex"
    )
    read: list[int] = []  # photos each catch-up read from the database
    catch_up = job.catch_up

    def counted(session: Any, *, newest: int | None = None) -> int:
        read.append(catch_up(session, newest=newest))
        return read[-1]

    job.catch_up = counted  # type: ignore[method-assign]
    job.run_scene_check(photo_id)  # already checked by serve: only the index is loaded
    assert job.loaded_from == "snapshot"
    assert sum(read) == 1, read  # B1's row; the snapshot's two were not read again
    bulk = DuplicateIndex()
    bulk_load(bulk, state.db.engine)
    assert len(job.index) == len(bulk) == 3
    _same(job.index, bulk, embedding_step=1)  # the snapshot is of serve's index
    job.run_scene_check(photo_id)  # once per process: the next job only catches up
    assert job.loaded_from == "snapshot" and sum(read) == 1


def test_bulk_read_snapshot_and_restart(pg_server: LiveServer, tmp_path: Path) -> None:
    with loopback_client(pg_server.url + "/api/v1", timeout=120) as client:
        _, v = setup_campaign(client)
        for village, household, rel in [
            ("东村", "A1", GOOD),
            ("南村", "C1", ORIENT_A),
            ("南村", "C2", ORIENT_B),  # a copy of C1's: kept out of the index
        ]:
            r = client.post(f"/households/{household}/photos", files=photo(rel), headers=v[village])
            assert r.status_code == 201, r.text
        state = pg_server.app_state
        assert state.intake.drain(timeout=120)
        engine = state.db.engine

        rows = DuplicateIndex()
        with state.db.session() as session:
            rows.build(dup_entries(session))
        bulk = DuplicateIndex()
        seen = bulk_load(bulk, engine)
        assert len(bulk) == len(rows) == 2
        _same(bulk, rows)  # ids, households, counties, PDQ tables, GPS, embeddings

        snaps = Snapshots(tmp_path / "snaps")
        assert snaps.save(bulk, seen, engine) is not None
        back = DuplicateIndex(spill_dir=tmp_path / "spill")
        assert snaps.load(back, engine) == seen
        _same(back, rows)
        pointer = json.loads((snaps.directory / "current.json").read_text())
        meta_path = snaps.directory / pointer["dir"] / "meta.json"
        meta = json.loads(meta_path.read_text())
        meta["photos"] = {k: "0" * 64 for k in meta["photos"]}  # another database's photos
        meta_path.write_text(json.dumps(meta))
        assert snaps.load(DuplicateIndex(), engine) is None

        assert state.intake.save_snapshot()
        r = client.post("/households/B1/photos", files=photo(GOOD_2), headers=v["西村"])
        assert r.status_code == 201, r.text  # stored after the snapshot
        assert state.intake.drain(timeout=120)
        _job_process_starts_from_the_snapshot(state, r.json()["photo_id"])

        pg_server.restart()
        intake = pg_server.app_state.intake
        assert intake.loaded_from == "snapshot"
        assert len(intake.index) == 3  # the snapshot's two and B1's, caught up
        r = _post(client, v["南村"], "C3", _reencoded(GOOD_2))
        body = r.json()
        assert "DUPLICATE_PHOTO" in codes(body), body
        assert body["matches"][0]["household_id"] == "B1"
