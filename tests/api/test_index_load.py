"""A worker's fast start on PostgreSQL (``store.indexload``): the bulk read builds the
same index as the row-by-row read, a snapshot gives it back, a snapshot of another
database is refused, and a restarted server loads its snapshot and catches up with
the photos stored after it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from photocheck.store.dupindex import DuplicateIndex
from photocheck.store.indexload import Snapshots, bulk_load
from photocheck.store.repo import dup_entries

from .conftest import LiveServer, make_settings, pg_schema, seed_admin
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


def _same(a: DuplicateIndex, b: DuplicateIndex) -> None:
    sa, sb = a.snapshot(), b.snapshot()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert np.array_equal(np.asarray(sa[key]), np.asarray(sb[key])), key


def test_bulk_read_snapshot_and_restart(pg_server: LiveServer, tmp_path: Path) -> None:
    with httpx.Client(base_url=pg_server.url + "/api/v1", timeout=120) as client:
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

        pg_server.restart()
        intake = pg_server.app_state.intake
        assert intake.loaded_from == "snapshot"
        assert len(intake.index) == 3  # the snapshot's two and B1's, caught up
        r = _post(client, v["南村"], "C3", _reencoded(GOOD_2))
        body = r.json()
        assert "DUPLICATE_PHOTO" in codes(body), body
        assert body["matches"][0]["household_id"] == "B1"
