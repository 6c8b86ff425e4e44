"""The look-back re-check survives ``kill -9`` of the embedded service (issue 12 part 3):
a real ``serve`` process (SQLite, local blobs) runs a re-check in batches of one photo
and is killed after two batches were saved and while a third was checked but not
written; a new process on the same data folder finishes the run at start-up."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from tests.api.conftest import ADMIN, TEST_HASHING, login

from .conftest import WorkerProcess, import_households, service_env
from .test_workers import TRIAL_PHOTOS, households_csv, upload

PHOTOS = 5
HOLD_AT = 3  # the process stops before saving its 3rd batch


def test_a_recheck_killed_mid_run_finishes_after_a_restart(tmp_path: Path) -> None:
    from api.accounts import add_user
    from api.settings import Settings
    from photocheck.store import Role

    data_dir = tmp_path / "data"
    settings = Settings(DATA_DIR=data_dir, **TEST_HASHING)  # type: ignore[arg-type]
    add_user(settings, ADMIN[0], ADMIN[1], role=Role.COUNTY, county="丹凤县")
    held = tmp_path / "held"
    env = service_env(data_dir, "", RECHECK_BATCH="1")
    first = WorkerProcess(
        {**env, "PHOTOCHECK_TEST_RECHECK_HOLD_AT": str(HOLD_AT),
         "PHOTOCHECK_TEST_RECHECK_HELD": str(held)},
        tmp_path / "first.log",
        module="tests.scale.held_serve",
    )  # fmt: skip
    second = WorkerProcess(env, tmp_path / "second.log")
    try:
        first.start()
        first.wait_ready()
        with first.client() as c:
            villages = import_households(c, households_csv(PHOTOS))
            for i, relpath in enumerate(TRIAL_PHOTOS[:PHOTOS]):
                r = upload(c, villages["东村"], f"E{i}", relpath)
                assert r.status_code == 201, r.text
            admin = login(c, *ADMIN)
            r = c.post("/rechecks", json={}, headers=admin)
            assert r.status_code == 201, r.text
            run_id = r.json()["run_id"]
            _wait(held.exists, "the re-check to reach its 3rd batch")
            mid = c.get(f"/rechecks/{run_id}", headers=admin).json()
        assert (mid["state"], mid["done"], mid["total"]) == ("running", HOLD_AT - 1, PHOTOS)
        first.kill()
        assert first.proc is not None and first.proc.returncode == -9

        second.start()  # same data folder and database; resumes at start-up
        second.wait_ready()
        with second.client() as c:
            admin = login(c, *ADMIN)

            def finished() -> bool:
                return c.get(f"/rechecks/{run_id}", headers=admin).json()["state"] != "running"

            _wait(finished, "the re-check to finish")
            run = c.get(f"/rechecks/{run_id}", headers=admin).json()
        assert (run["state"], run["done"], run["total"]) == ("done", PHOTOS, PHOTOS), run
        assert run["failed"] == 0 and run["changes"] == {}, run
    finally:
        first.kill()
        second.stop()
    with sqlite3.connect(data_dir / "photocheck.sqlite3") as db:
        per_photo = db.execute(
            "SELECT p.id, count(v.id), count(v.verdict) FROM photos p LEFT JOIN photo_verdicts v"
            " ON v.photo_id = p.id AND v.run_id = ? GROUP BY p.id",
            (run_id,),
        ).fetchall()
        total = db.execute("SELECT total FROM recheck_runs WHERE id = ?", (run_id,)).fetchone()
    assert len(per_photo) == PHOTOS and all(n == 1 and v == 1 for _, n, v in per_photo), per_photo
    assert total == (PHOTOS,)


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
