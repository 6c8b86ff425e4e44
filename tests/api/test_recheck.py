"""The county's look-back re-check (issue 12 part 3), on a real server over SQLite and
PostgreSQL (there through the pgqueuer job queue), with real photos.

One server per database kind for the module: photos are uploaded under the packaged
policy, then the server restarts with a policy file whose BLURRY threshold is raised
(0.465 -> 0.76): the Japanese house (sharpness 0.54) and Lund 03 (0.74), both in review
at upload, now need a retake; the Canon street (0.86) stays in review and the blurred
photo (0.24) stays rejected.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook

from photocheck.errors import RecheckRefused
from photocheck.recheck.runs import RECHECK, RETRY_DELAYS, Recheck
from photocheck.recheck.tables import PhotoVerdict, RecheckRun
from tests.conftest import data_file

from .conftest import (
    ADMIN,
    LiveServer,
    activate,
    loopback_client,
    make_settings,
    seed_admin,
    start_campaign,
)

HOUSEHOLDS = """household_id,head_name,town,village,category
H1,张一,龙驹寨镇,东村,鉴定安全
H2,王二,龙驹寨镇,西村,鉴定安全
H3,李三,棣花镇,南村,改造安全
H4,赵四,棣花镇,南村,改造安全
"""
PHOTOS = {
    "H1": ("东村", "buildings/camera_corpus/fujifilm_ds7_2_japanese_house.jpg"),
    "H2": ("西村", "buildings/opensfm_lund/03.jpg"),
    "H3": ("南村", "buildings/camera_corpus/canon_s30_house_street.jpg"),
    "H4": ("南村", "blur/qualipy/blurred_whole.jpg"),
}
NEW_VERSION = "2026.12-lookback"


@dataclass
class World:
    live: LiveServer
    admin: dict[str, str]
    villages: dict[str, dict[str, str]]
    town: dict[str, str]  # 龙驹寨镇's account
    town_login: tuple[str, str]


def _stricter_policy(path: Path) -> Path:
    """The packaged policy with a new version and a stricter BLURRY threshold."""
    text = (Path(__file__).resolve().parents[2] / "photocheck/default_policy.toml").read_text()
    text, n = re.subn(r'^version = ".*"$', f'version = "{NEW_VERSION}"', text, flags=re.M)
    text, m = re.subn(r"^blur_min_sharpness = .*$", "blur_min_sharpness = 0.76", text, flags=re.M)
    assert n == m == 1
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def world(module_db: tuple[str, Path]) -> Iterator[World]:
    url, tmp = module_db
    settings = make_settings(tmp, url, RECHECK_BATCH=2)
    seed_admin(settings)
    live = LiveServer(settings)
    live.start()
    with loopback_client(live.url + "/api/v1", timeout=120) as c:
        admin, villages, _ = start_campaign(c, HOUSEHOLDS)
        r = c.post("/users/town", json={"username": "town-lj", "town": "龙驹寨镇"}, headers=admin)
        assert r.status_code == 201, r.text
        town = activate(c, "town-lj", r.json()["password"], "town-lj-pass-1")
        for household, (village, relpath) in PHOTOS.items():
            path = data_file(relpath)
            files = {"file": (path.name, path.read_bytes(), "image/jpeg")}
            r = c.post(f"/households/{household}/photos", files=files, headers=villages[village])
            assert r.status_code == 201, r.text
        live.app_state.intake.drain(120)
    # the county edits the policy file and restarts the service with it
    live.settings = settings.model_copy(update={"POLICY": _stricter_policy(tmp / "policy.toml")})
    live.restart()
    assert live.app_state.policy.version == NEW_VERSION
    yield World(live, admin, villages, town, ("town-lj", "town-lj-pass-1"))
    live.stop()


def _wait_done(c: httpx.Client, headers: dict[str, str], run_id: int) -> dict[str, Any]:
    """Poll the run (bounded) until it is no longer running."""
    for _ in range(600):
        run = c.get(f"/rechecks/{run_id}", headers=headers).json()
        if run["state"] != "running":
            return run
        time.sleep(0.2)
    raise AssertionError(f"re-check {run_id} still running: {run}")


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found, page[:500]
    return found.group(1)


def _retakes(c: httpx.Client, headers: dict[str, str]) -> list[str]:
    r = c.get("/retakes", headers=headers)
    assert r.status_code == 200, r.text
    return sorted(x["household_id"] for x in r.json())


def test_county_rechecks_reads_the_report_and_confirms(world: World) -> None:
    live = world.live
    with (
        loopback_client(live.url + "/api/v1", timeout=120) as api,
        loopback_client(live.url, timeout=120) as page,
    ):
        assert _retakes(api, world.admin) == ["H4"]
        progress_before = api.get("/progress", headers=world.admin).json()
        r = page.post("/audit/login", data={"username": ADMIN[0], "password": ADMIN[1]})
        assert r.status_code == 303, r.text
        start = page.get("/audit/recheck")
        assert start.status_code == 200 and 'id="start-recheck"' in start.text
        r = page.post("/audit/recheck", data={"csrf": _csrf(start.text), "town": ""})
        assert r.status_code == 303, r.text
        run_id = int(r.headers["location"].rpartition("=")[2])
        run = _wait_done(api, world.admin, run_id)
        assert run["state"] == "done" and run["done"] == run["total"] == 4, run
        assert run["policy_version"] == NEW_VERSION and run["started_by"] == ADMIN[0]
        assert run["changes"] == {"review->reject": 2}, run

        # nothing the villages see has changed before the county confirms
        assert _retakes(api, world.admin) == ["H4"]
        own = api.get("/households/H1", headers=world.villages["东村"]).json()
        assert own["status"] == "review", own

        # the change report: page, JSON and XLSX say the same
        report = page.get(f"/audit/recheck?run={run_id}")
        assert report.status_code == 200
        rows = re.findall(r'class="change" data-household="(\w+)" data-old="(\w+)" '
                          r'data-new="(\w+)"', report.text)  # fmt: skip
        assert sorted(rows) == [("H1", "review", "reject"), ("H2", "review", "reject")]
        assert 'data-code="BLURRY"' in report.text and 'id="confirm-run"' in report.text
        changes = api.get(f"/rechecks/{run_id}/changes", headers=world.admin).json()
        assert [c["household_id"] for c in changes] == ["H1", "H2"]
        assert all([a["code"] for a in c["reasons_added"]] == ["BLURRY"] for c in changes)
        assert all(c["reasons"][0]["message_zh"] for c in changes)
        xlsx = page.get(f"/audit/recheck/{run_id}/changes.xlsx")
        assert xlsx.status_code == 200, xlsx.text
        sheet = load_workbook(io.BytesIO(xlsx.content))["变化清单 Changes"]
        cells = [[str(v) for v in row] for row in sheet.iter_rows(min_row=3, values_only=True)]
        assert [r[2] for r in cells] == ["H1", "H2"]
        assert all(r[4].startswith("待审核") and r[5].startswith("需重拍") for r in cells)
        assert all("BLURRY" in r[6] for r in cells), cells
        book = load_workbook(io.BytesIO(xlsx.content))["汇总 Summary"]
        summary = {str(k): v for k, v, *_ in book.iter_rows(values_only=True)}
        assert summary["政策版本 Policy version"] == NEW_VERSION

        # the county confirms: retake lists and progress follow
        r = page.post(f"/audit/recheck/{run_id}/confirm", data={"csrf": _csrf(report.text)})
        assert r.status_code == 303, r.text
        run = api.get(f"/rechecks/{run_id}", headers=world.admin).json()
        assert run["state"] == "confirmed" and run["confirmed_by"] == ADMIN[0], run
        assert run["applied"] == 4 and run["skipped"] == 0, run
        assert _retakes(api, world.admin) == ["H1", "H2", "H4"]
        assert _retakes(api, world.villages["东村"]) == ["H1"]
        own = api.get("/households/H1", headers=world.villages["东村"]).json()
        assert own["status"] == "reject", own
        progress = api.get("/progress", headers=world.admin).json()
        before, after = progress_before["total"], progress["total"]
        assert (before["retake"], after["retake"]) == (1, 3), (before, after)
        # the old verdict stays on record beside the new one
        with live.app_state.db.session() as s:
            records = s.query(PhotoVerdict).filter_by(run_id=run_id).all()
            assert {(r.old_verdict, r.verdict) for r in records if r.is_current} == {
                ("review", "reject"),
                ("review", "review"),
                ("reject", "reject"),
            }
            assert {r.old_policy_version for r in records} != {NEW_VERSION}
        # confirming twice is refused, bilingual
        r = api.post(f"/rechecks/{run_id}/confirm", headers=world.admin)
        assert r.status_code == 409 and r.json()["error"]["code"] == "RECHECK_STATE", r.text
        assert re.search(r"[\u4e00-\u9fff]", r.json()["error"]["message_zh"])


def test_pause_resume_restart_and_refusals(world: World) -> None:
    """Deterministic batches: the run's jobs are recorded and run one by one; a new
    ``Recheck`` on the same database (a restarted process) resumes the rest."""
    state = world.live.app_state
    queued: list[tuple[str, int]] = []

    class Recorded:
        def enqueue(self, kind: str, key: int) -> None:
            queued.append((kind, key))

    first = Recheck(state.db, state.blobs, state.policy, state.model, jobs=Recorded(),
                    batch_size=1)  # fmt: skip
    admin_id = _user_id(state, ADMIN[0])
    county_id = _county_of(state, admin_id)
    run = first.start(county_id, admin_id)
    assert run.total == 4 and [k for k, _ in queued] == [RECHECK] * 4
    first.run_batch(queued[0][1])
    first.run_batch(queued[0][1])  # delivered twice: nothing more happens
    assert _done(state, run.id) == 1
    first.pause(run.id, county_id, admin_id)
    first.run_batch(queued[1][1])  # a paused run's job ends at once
    assert _done(state, run.id) == 1

    with loopback_client(world.live.url + "/api/v1", timeout=120) as api:
        status = api.get(f"/rechecks/{run.id}", headers=world.admin).json()
        assert status["state"] == "paused" and (status["done"], status["total"]) == (1, 4)
        assert status["paused_by"] == ADMIN[0]
        # a second re-check while one is paused (or running): refused, bilingual
        r = api.post("/rechecks", json={}, headers=world.admin)
        err = r.json()["error"]
        assert r.status_code == 409 and err["code"] == "RECHECK_RUNNING", r.text
        assert re.search(r"[\u4e00-\u9fff]", err["message_zh"]), err
        # a town reads but cannot act; a village sees nothing of it
        assert api.get(f"/rechecks/{run.id}", headers=world.town).status_code == 200
        for path in ("/rechecks", f"/rechecks/{run.id}/resume", f"/rechecks/{run.id}/confirm"):
            r = api.post(path, json={}, headers=world.town)
            assert r.status_code == 403 and r.json()["error"]["message_zh"], (path, r.text)
        village = world.villages["东村"]
        for path in (f"/rechecks/{run.id}", "/rechecks", f"/rechecks/{run.id}/changes"):
            assert api.get(path, headers=village).status_code == 403, path
        assert api.post("/rechecks", json={}, headers=village).status_code == 403
    with loopback_client(world.live.url, timeout=120) as page:
        r = page.post("/audit/login", data={"username": ADMIN[0], "password": ADMIN[1]})
        csrf = _csrf(page.get("/audit/recheck").text)
        r = page.post("/audit/recheck", data={"csrf": csrf})
        assert r.status_code == 409 and 'data-code="RECHECK_RUNNING"' in r.text, r.text
        assert page.post("/audit/recheck", data={"csrf": "forged"}).status_code == 403
    with loopback_client(world.live.url, timeout=120) as town_page:
        username, password = world.town_login
        r = town_page.post("/audit/login", data={"username": username, "password": password})
        view = town_page.get(f"/audit/recheck?run={run.id}")
        assert view.status_code == 200 and 'id="resume"' not in view.text
        r = town_page.post(f"/audit/recheck/{run.id}/resume", data={"csrf": _csrf(view.text)})
        assert r.status_code == 403 and 'data-code="FORBIDDEN"' in r.text

    queued.clear()
    first.resume(run.id, county_id, admin_id)
    assert len(queued) == 3  # the batches still to do
    first.run_batch(queued[0][1])
    assert _done(state, run.id) == 2
    # the process dies here (its queue is lost); the next one resumes at start-up
    second = Recheck(state.db, state.blobs, state.policy, state.model, batch_size=1)
    assert second.resume_interrupted() == 2
    assert second.drain(120)
    with state.db.session() as s:
        done = s.get(RecheckRun, run.id)
        assert done is not None and done.state == "done", done
        records = s.query(PhotoVerdict).filter_by(run_id=run.id).all()
        assert len(records) == 4 and all(r.verdict for r in records)
        assert all(r.policy_version == NEW_VERSION for r in records)
        assert len({r.photo_id for r in records}) == 4
    with pytest.raises(RecheckRefused) as exc:
        second.pause(run.id, county_id, admin_id)
    assert exc.value.code == "RECHECK_STATE"
    second.close()


def test_a_town_scope_run(world: World) -> None:
    with loopback_client(world.live.url + "/api/v1", timeout=120) as api:
        r = api.post("/rechecks", json={"town": "没有这个镇"}, headers=world.admin)
        assert r.status_code == 404, r.text
        r = api.post("/rechecks", json={"town": "棣花镇"}, headers=world.admin)
        assert r.status_code == 201, r.text
        run = _wait_done(api, world.admin, r.json()["run_id"])
        assert run["town"] == "棣花镇" and run["total"] == 2, run
        # the town-lj account does not see a run of another town
        assert api.get(f"/rechecks/{run['run_id']}", headers=world.town).status_code == 404


def test_another_worker_finishes_a_run(world: World) -> None:
    """PostgreSQL: a run started by a process that dies before running any batch (its
    jobs are in the queue) is finished by another worker, the server's job runner."""
    state = world.live.app_state
    if state.db.dialect != "postgresql":
        pytest.skip("the embedded default resumes at start-up (test above)")
    from photocheck.jobs import QueueJobs

    admin_id = _user_id(state, ADMIN[0])
    gone = Recheck(state.db, state.blobs, state.policy, state.model, jobs=QueueJobs(state.db),
                   batch_size=1)  # fmt: skip
    run = gone.start(_county_of(state, admin_id), admin_id)
    with loopback_client(world.live.url + "/api/v1", timeout=120) as api:
        done = _wait_done(api, world.admin, run.id)
    assert done["state"] == "done" and done["done"] == done["total"] == 4, done


def test_an_unreadable_original_fails_its_photo_not_the_run(world: World) -> None:
    """H2's original replaced by a link to ``/proc/self/mem`` (a regular file whose read
    fails with EIO, even as root: a disk or store error): tried again, then recorded as
    ``failed`` with a bilingual reason; the run finishes, the report lists it, and
    confirming keeps H2's verdict."""
    from photocheck.store import Household, LocalBlobStore, Photo

    state = world.live.app_state
    assert isinstance(state.blobs, LocalBlobStore)
    with state.db.session() as s:
        photo = (
            s.query(Photo)
            .join(Household, Household.id == Photo.household_id)
            .filter(Household.household_code == "H2", Photo.is_current.is_(True))
            .one()
        )
        verdict, blob = photo.verdict, state.blobs.root / photo.blob_path
    saved = blob.read_bytes()
    blob.unlink()
    blob.symlink_to("/proc/self/mem")
    assert state.recheck is not None
    state.recheck.retry_delays = (0.01, 0.02)  # bounded: two more tries
    try:
        with (
            loopback_client(world.live.url + "/api/v1", timeout=120) as api,
            loopback_client(world.live.url, timeout=120) as page,
        ):
            r = api.post("/rechecks", json={}, headers=world.admin)
            assert r.status_code == 201, r.text
            run = _wait_done(api, world.admin, r.json()["run_id"])
            assert run["state"] == "done" and run["done"] == run["total"] == 4, run
            assert run["failed"] == 1 and not any("failed" in k for k in run["changes"]), run
            changes = api.get(f"/rechecks/{run['run_id']}/changes", headers=world.admin).json()
            failed = [c for c in changes if c["new_verdict"] == "failed"]
            assert [c["household_id"] for c in failed] == ["H2"], changes
            reason = failed[0]["reasons"][0]
            assert reason["code"] == "RECHECK_FAILED", reason
            assert "Input/output error" in reason["message_en"], reason
            assert re.search(r"[\u4e00-\u9fff]", reason["message_zh"]), reason
            page.post("/audit/login", data={"username": ADMIN[0], "password": ADMIN[1]})
            report = page.get(f"/audit/recheck?run={run['run_id']}").text
            assert 'id="failed-photos" data-failed="1"' in report
            assert 'data-household="H2" data-old="' in report
            assert 'data-code="RECHECK_FAILED"' in report
            xlsx = page.get(f"/audit/recheck/{run['run_id']}/changes.xlsx").content
            cells = [str(v) for row in load_workbook(io.BytesIO(xlsx))["变化清单 Changes"]
                     .iter_rows(min_row=3, values_only=True) for v in row]  # fmt: skip
            assert "复核失败 re-check failed" in cells, cells
            r = api.post(f"/rechecks/{run['run_id']}/confirm", headers=world.admin)
            assert r.status_code == 200, r.text
            assert r.json()["applied"] == 3, r.json()
            own = api.get("/households/H2", headers=world.villages["西村"]).json()
            assert own["status"] == verdict, own  # kept, not "failed"
    finally:
        blob.unlink()
        blob.write_bytes(saved)
        state.recheck.retry_delays = RETRY_DELAYS


def _done(state: Any, run_id: int) -> int:
    with state.db.session() as s:
        return (
            s.query(PhotoVerdict)
            .filter(PhotoVerdict.run_id == run_id, PhotoVerdict.verdict.is_not(None))
            .count()
        )


def _user_id(state: Any, username: str) -> int:
    from photocheck.store import User

    with state.db.session() as s:
        return s.query(User).filter_by(username=username).one().id


def _county_of(state: Any, user_id: int) -> int:
    from photocheck.store import User

    with state.db.session() as s:
        return int(s.get(User, user_id).county_id)
