"""The audit over real HTTP: findings from real uploads, decisions and their trail,
scopes, progress and its XLSX export checked against the database.

The tests that start from the same duplicate campaign and add nothing another of
them counts share it, one server per database for the module (``dup_campaign``);
the others need an empty database of their own (``server``)."""

from __future__ import annotations

import datetime as dt
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import openpyxl
import pytest
from sqlalchemy import func, select

from photocheck.audit.records import CHINA_TZ
from photocheck.audit.tables import AuditPhotoCheck
from photocheck.store import Household, Photo

from .conftest import ADMIN, LiveServer, activate, login, loopback_client, make_settings, seed_admin
from .test_session import GOOD, GOOD_2, ORIENT_A, ORIENT_B, setup_campaign, upload


def refresh(client: httpx.Client, headers: dict) -> dict:
    """Recompute the findings now and wait for it (the worker's test handle)."""
    r = client.post("/audit/refresh", params={"wait": "true"}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["pending_photos"] == 0
    return r.json()


def findings(client: httpx.Client, headers: dict, **params: str) -> list[dict]:
    r = client.get("/audit/findings", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["findings"]


def duplicate_campaign(client: httpx.Client) -> tuple[dict, dict[str, dict]]:
    admin, v = setup_campaign(client)
    assert upload(client, v["东村"], "A1", GOOD).status_code == 201
    assert upload(client, v["西村"], "B1", GOOD).status_code == 201  # same photo, 2 households
    assert upload(client, v["南村"], "C1", ORIENT_A).status_code == 201
    assert upload(client, v["南村"], "C2", ORIENT_B).status_code == 201  # same, rotated tag
    return admin, v


@dataclass
class DupCampaign:
    server: LiveServer
    client: httpx.Client
    admin: dict[str, str]
    villages: dict[str, dict[str, str]]


@pytest.fixture(scope="module")
def dup_campaign(module_db: tuple[str, Path]) -> Iterator[DupCampaign]:
    """``duplicate_campaign`` once per database, refreshed, for the tests below that
    hold whatever else the others did to it: the decisions test dismisses its cluster
    and adds a photo without a duplicate, the two-counties test adds another county;
    progress and the offline report are compared with the database as it is."""
    url, tmp = module_db
    settings = make_settings(tmp, url)
    seed_admin(settings)
    live = LiveServer(settings)
    live.start()
    try:
        with loopback_client(live.url + "/api/v1") as client:
            admin, villages = duplicate_campaign(client)
            refresh(client, admin)
            yield DupCampaign(live, client, admin, villages)
    finally:
        live.stop()


def test_findings_decisions_and_scope(dup_campaign: DupCampaign) -> None:
    client, admin, v = dup_campaign.client, dup_campaign.admin, dup_campaign.villages
    refresh(client, admin)  # what another test of the module uploaded
    r = client.get("/audit/findings", params={"kind": "duplicate_cluster"}, headers=admin)
    assert r.status_code == 200, r.text
    clusters = {tuple(sorted(f["household_ids"])): f for f in r.json()["findings"]}
    assert set(clusters) == {("A1", "B1"), ("C1", "C2")}
    dup = clusters[("A1", "B1")]
    assert dup["status"] == "open" and dup["severity"] == "high"
    assert dup["evidence"]["relation"] == "same_photo" and dup["evidence"]["pairs"]

    # every photo with a review or reject reason is listed too
    reasons = client.get("/audit/findings", params={"kind": "photo_reason"}, headers=admin)
    assert {"B1", "C2"} <= {h for f in reasons.json()["findings"] for h in f["household_ids"]}

    # filters: by town name, by status, by village id
    town = client.get("/audit/findings", params={"town": "棣花镇"}, headers=admin).json()
    assert town["total"] >= 1
    assert all("A1" not in f["household_ids"] for f in town["findings"])
    r = client.get("/audit/findings", params={"town": "没有这个镇"}, headers=admin)
    assert r.status_code == 404

    # decisions: a dismissal needs a note; the trail says who and when
    url = f"/audit/findings/{dup['id']}/decision"
    r = client.post(url, json={"action": "dismiss"}, headers=admin)
    assert r.status_code == 422 and r.json()["error"]["code"] == "INVALID_DECISION"
    r = client.post(url, json={"action": "dismiss", "note": "共用安置点照片"}, headers=admin)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "dismissed" and body["note"] == "共用安置点照片"
    assert [(e["by"], e["status_before"], e["status_after"]) for e in body["events"]] == [
        ("admin", "open", "dismissed")
    ]
    r = client.get("/audit/findings", params={"status": "dismissed"}, headers=admin)
    assert [f["id"] for f in r.json()["findings"]] == [dup["id"]]

    # new uploads recompute the findings; the decision stays with the same ID
    assert upload(client, v["东村"], "A2", GOOD_2).status_code == 201
    refresh(client, admin)
    again = client.get(f"/audit/findings/{dup['id']}", headers=admin).json()
    assert again["status"] == "dismissed" and len(again["events"]) == 1

    # scope: a village account may not audit; a town account sees its own town only
    r = client.get("/audit/findings", headers=v["东村"])
    assert r.status_code == 403
    r = client.post("/users/town", json={"username": "town-dh", "town": "棣花镇"}, headers=admin)
    slip = r.json()
    town_user = activate(client, slip["username"], slip["password"], "town-dh-pass-1")
    seen = client.get("/audit/findings", headers=town_user).json()["findings"]
    assert seen and all(not {"A1", "B1"} & set(f["household_ids"]) for f in seen)
    assert client.get(f"/audit/findings/{dup['id']}", headers=town_user).status_code == 404
    r = client.post(url, json={"action": "confirm"}, headers=town_user)
    assert r.status_code == 403  # a town account reads only (issue 9 item 8)


def test_progress_and_xlsx_match_the_database(dup_campaign: DupCampaign) -> None:
    server, client, admin = dup_campaign.server, dup_campaign.client, dup_campaign.admin
    body = client.get("/progress", headers=admin).json()
    total = body["total"]
    with server.app_state.db.session() as session:
        households = session.scalar(select(func.count()).select_from(Household)) or 0
        with_photo = session.scalar(select(func.count(func.distinct(Photo.household_id)))) or 0
        current = dict(
            session.execute(
                select(Photo.verdict, func.count()).where(Photo.is_current).group_by(Photo.verdict)
            ).all()
        )
    assert total["total"] == households > 0
    assert total["no_photo"] == households - with_photo
    assert total["accepted"] == current.get("accept", 0)
    assert total["review"] == current.get("review", 0)
    assert total["retake"] == current.get("reject", 0)
    assert {t["town"] for t in body["towns"]} == {"龙驹寨镇", "棣花镇"}
    assert sorted(r["rank"] for r in body["towns"])[0] == 1

    r = client.get("/progress", params={"format": "xlsx"}, headers=admin)
    assert r.status_code == 200 and "spreadsheetml" in r.headers["content-type"]
    wb = openpyxl.load_workbook(io.BytesIO(r.content))
    ws = wb["村排名"]
    header = [c.value for c in ws[2]]
    rows = [[c.value for c in row] for row in ws.iter_rows(min_row=3)]
    last = rows[-1]
    assert last[1] == "合计"
    for name, key in (("总户数", "total"), ("已通过", "accepted"), ("待审核", "review"),
                      ("待重拍", "retake"), ("未上传", "no_photo")):  # fmt: skip
        col = header.index(name)
        assert last[col] == total[key] == sum(cast(int, row[col]) for row in rows[:-1])

    csv = client.get("/progress", params={"format": "csv"}, headers=admin)
    assert csv.content.startswith(b"\xef\xbb\xbf") and "总户数" in csv.content.decode("utf-8-sig")
    assert client.get("/progress").status_code == 401


def test_swapped_picture_with_kept_exif_becomes_a_finding(
    server: LiveServer, client: httpx.Client
) -> None:
    """A real camera file whose picture was replaced while its EXIF (and thumbnail) was
    kept: the upload check may pass it, the audit's thumbnail comparison does not."""
    from tests.audit.test_thumbnail import GENUINE, _with_exif_of, load

    admin, v = setup_campaign(client)
    genuine = load(GENUINE[0])
    swapped = _with_exif_of(genuine, load(GENUINE[1]))
    for household, data in (("A1", genuine), ("B1", swapped)):
        village = v["东村"] if household == "A1" else v["西村"]
        r = client.post(
            f"/households/{household}/photos",
            files={"file": (f"{household}.jpg", data, "image/jpeg")},
            headers=village,
        )
        assert r.status_code == 201, r.text
    # the upload compared the thumbnail with the pixels it had decoded anyway
    with server.app_state.db.session() as session:
        rows: Any = session.execute(select(Household.household_code, Photo.metrics).join(
            Photo, Photo.household_id == Household.id)).all()  # fmt: skip
        stored: dict[str, Any] = dict(rows)
    assert stored["A1"]["thumbnail_similarity"] >= 0.85 > stored["B1"]["thumbnail_similarity"]
    refresh(client, admin)
    found = findings(client, admin, kind="thumbnail_mismatch")
    assert [f["household_ids"] for f in found] == [["B1"]]
    assert found[0]["evidence"]["correlation"] == round(stored["B1"]["thumbnail_similarity"], 3)

    # photos stored before uploads did this: the refresh decodes them, once
    with server.app_state.db.write() as session:
        for photo in session.scalars(select(Photo)):
            photo.metrics = {k: v for k, v in photo.metrics.items() if "thumbnail" not in k}
            session.delete(session.get(AuditPhotoCheck, photo.id))
    refresh(client, admin)
    again = findings(client, admin, kind="thumbnail_mismatch")
    assert [f["id"] for f in again] == [found[0]["id"]]
    with server.app_state.db.session() as session:
        checks = session.scalars(select(AuditPhotoCheck)).all()
    assert sorted(bool(c.thumbnail_matches) for c in checks) == [False, True]


BATCH_HOUSEHOLDS = """household_id,head_name,town,village,category,site_id,lat,lon
N1,钱一,商镇,北村,appraised,,33.700,110.300
N2,钱二,商镇,北村,appraised,,33.702,110.301
N3,钱三,商镇,北村,appraised,,33.704,110.299
N4,钱四,商镇,北村,appraised,,33.698,110.303
N5,钱五,商镇,北村,appraised,,33.701,110.305
N6,钱六,商镇,北村,appraised,,33.703,110.297
"""
BATCH_FILES = [
    "buildings/strecha_herz_jesu/herz_jesu_0000.jpg",
    "blur/kwentar_triplets/176_HONOR-7X_S.jpg",
    "blur/kwentar_triplets/106_NIKON-D3400-35MM_S.JPG",
    "blur/oxford_bikes_blur/bikes_img1.ppm",
    "near_dup/oxford_leuven_light/leuven_img1.ppm",
    "bad_input/exposure/exposure_ok.jpg",
]


def test_desk_batch_from_app_captures(server: LiveServer, client: httpx.Client) -> None:
    """Six households 'photographed' at one spot within five minutes (the app's GPS fix
    and clock, photos without camera time): one desk-batch finding with its evidence."""
    from tests.conftest import data_file

    admin = login(client, *ADMIN)
    r = client.post(
        "/households/import",
        content=BATCH_HOUSEHOLDS.encode(),
        headers={**admin, "content-type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    account = r.json()["accounts"][0]
    village = activate(client, account["username"], account["password"], "north-pass-123")
    uploads_began = dt.datetime.now(CHINA_TZ).date()
    for i, (household, rel) in enumerate(zip(["N1", "N2", "N3", "N4", "N5", "N6"], BATCH_FILES,
                                             strict=True)):  # fmt: skip
        capture = {
            "lat": 33.7010 + 0.00002 * i,  # the village office, give or take 2 m
            "lon": 110.3010,
            "device_time": f"2026-08-03T19:{5 + i:02d}:00+08:00",
            "source": "app_camera" if i % 2 == 0 else "gallery",
        }
        path = data_file(rel)
        r = client.post(
            f"/households/{household}/photos",
            files={"file": (path.name, path.read_bytes(), "application/octet-stream")},
            data={"capture": json.dumps(capture)},
            headers=village,
        )
        assert r.status_code == 201, r.text
    refresh(client, admin)
    (batch,) = findings(client, admin, kind="desk_batch")
    assert sorted(batch["household_ids"]) == ["N1", "N2", "N3", "N4", "N5", "N6"]
    assert batch["evidence"]["radius_m"] < 10 and batch["evidence"]["minutes"] == 5.0
    # the finding is filed on the upload day (China time), not on the day the camera says
    filed = {dt.datetime.now(CHINA_TZ).date().isoformat(), uploads_began.isoformat()}
    assert batch["day"] in filed and batch["day"] != "2026-08-03"
    # "taken in the app, yet no camera data" only where the app says its camera took it:
    # N5 (a PPM, app camera) is one; N4 (a PPM picked from the gallery) is not
    missing = {h for f in findings(client, admin, kind="metadata_missing")
               for h in f["household_ids"]}  # fmt: skip
    assert "N5" in missing and missing <= {"N1", "N3", "N5"}
    bad = client.post(
        "/households/N1/photos",
        files={"file": ("x.jpg", data_file(BATCH_FILES[0]).read_bytes(), "image/jpeg")},
        data={"capture": json.dumps({"source": "camera_roll"})},
        headers=village,
    )
    assert bad.status_code == 422 and "capture" in bad.json()["error"]["message"]


def test_offline_report_from_the_service_database(
    dup_campaign: DupCampaign, tmp_path: Path
) -> None:
    from photocheck import default_policy
    from photocheck.audit.command import write_report

    server, client, admin = dup_campaign.server, dup_campaign.client, dup_campaign.admin
    refresh(client, admin)  # what another test of the module uploaded
    page = client.get("/audit/findings", headers=admin).json()
    settings = server.app_state.settings
    out = tmp_path / "report.html"
    n = write_report(
        out,
        policy=default_policy(),
        database_url=settings.database_url,
        blobs=settings.blob_config().store("blobs"),
        show_progress=False,
    )
    html = out.read_text("utf-8")
    # the report counts what the page lists (the upload check's own reasons included)
    assert n == page["total"] and any(f["kind"] == "photo_reason" for f in page["findings"])
    assert n >= 2 and html.count('src="data:image/jpeg;base64,') >= 4  # 2 clusters x 2
    assert "重复照片（跨户）" in html and "龙驹寨镇" in html


def test_findings_refresh_in_the_background(server: LiveServer, client: httpx.Client) -> None:
    """Uploads wake the worker; the list answers at once with what is stored and says
    when it was computed and how many photos are pending, until the refresh is done."""
    admin, _ = duplicate_campaign(client)
    body = client.get("/audit/findings", headers=admin).json()
    assert set(body["status"]) >= {"computed_at", "pending_photos", "refreshing"}
    deadline = time.monotonic() + 120  # the debounced refresh comes within seconds
    while client.get("/audit/status", headers=admin).json()["pending_photos"]:
        assert time.monotonic() < deadline, "the worker never included the uploads"
        time.sleep(0.2)
    body = client.get("/audit/findings", params={"kind": "duplicate_cluster"}, headers=admin)
    assert body.json()["status"]["computed_at"] and len(body.json()["findings"]) == 2
    page = httpx.get(server.url + "/audit", cookies=_cookie(client), timeout=60)
    assert (
        page.status_code == 200 and "问题清单计算于" in page.text and "已包含全部照片" in page.text
    )


def _cookie(client: httpx.Client) -> dict[str, str]:
    r = client.post("/auth/token", data={"username": ADMIN[0], "password": ADMIN[1]})
    return {"photocheck_token": r.json()["access_token"]}


def test_a_cross_town_cluster_shows_in_both_towns(server: LiveServer, client: httpx.Client) -> None:
    admin, v = setup_campaign(client)
    assert upload(client, v["东村"], "A1", GOOD).status_code == 201  # 龙驹寨镇
    assert upload(client, v["南村"], "C1", GOOD).status_code == 201  # 棣花镇
    refresh(client, admin)
    (dup,) = findings(client, admin, kind="duplicate_cluster")
    for town in ("龙驹寨镇", "棣花镇"):
        assert [f["id"] for f in findings(client, admin, town=town, kind="duplicate_cluster")] == [
            dup["id"]
        ]
    assert dup["id"] in {f["id"] for f in findings(client, admin, village="南村")}
    assert dup["id"] in {f["id"] for f in findings(client, admin, village="东村")}
    r = client.post("/users/town", json={"username": "town-dh", "town": "棣花镇"}, headers=admin)
    slip = r.json()
    town_user = activate(client, slip["username"], slip["password"], "town-dh-pass-1")
    assert dup["id"] in {f["id"] for f in findings(client, town_user)}
    assert client.get(f"/audit/findings/{dup['id']}", headers=town_user).status_code == 200


def test_a_grown_cluster_carries_the_earlier_decision(
    server: LiveServer, client: httpx.Client
) -> None:
    """A1 and B1 share a photo and it is dismissed; then C3 uploads it too: the new,
    bigger cluster is open (C3 was never looked at) and shows the earlier decision."""
    admin, v = setup_campaign(client)
    assert upload(client, v["东村"], "A1", GOOD).status_code == 201
    assert upload(client, v["西村"], "B1", GOOD).status_code == 201
    refresh(client, admin)
    (old,) = findings(client, admin, kind="duplicate_cluster")
    r = client.post(
        f"/audit/findings/{old['id']}/decision",
        json={"action": "dismiss", "note": "同一安置点"},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    assert upload(client, v["南村"], "C3", GOOD).status_code == 201
    refresh(client, admin)
    (new,) = findings(client, admin, kind="duplicate_cluster")
    assert sorted(new["household_ids"]) == ["A1", "B1", "C3"] and new["id"] != old["id"]
    assert new["status"] == "open" and new["earlier_ids"] == [old["id"]]
    detail = client.get(f"/audit/findings/{new['id']}", headers=admin).json()
    (earlier,) = detail["earlier"]
    assert earlier["status"] == "dismissed" and earlier["note"] == "同一安置点"
    assert earlier["new_household_ids"] == ["C3"]
    assert [e["status_after"] for e in earlier["events"]] == ["dismissed"]
    gone = client.get(f"/audit/findings/{old['id']}", headers=admin).json()
    assert gone["active"] is False and gone["status"] == "dismissed"
    page = httpx.get(
        server.url + f"/audit/findings/{new['id']}", cookies=_cookie(client), timeout=60
    )
    assert "此前的处理" in page.text and "同一安置点" in page.text


OTHER_COUNTY = ("admin-sn", "other-county-secret-1")
OTHER_HOUSEHOLDS = """household_id,head_name,town,village,category,site_id,lat,lon
X1,冯一,富水镇,河村,appraised,,33.50,110.90
X2,冯二,富水镇,河村,appraised,,33.501,110.901
X3,冯三,富水镇,河村,appraised,,33.502,110.902
X4,冯四,富水镇,河村,appraised,,33.503,110.903
"""


def test_two_counties_never_see_each_other(dup_campaign: DupCampaign) -> None:
    """The same photo in two counties: each county's audit shows its own households only."""
    from api.accounts import add_user
    from photocheck.store import Role

    server, client, admin = dup_campaign.server, dup_campaign.client, dup_campaign.admin
    add_user(server.app_state.settings, *OTHER_COUNTY, role=Role.COUNTY, county="商南县")
    other = login(client, *OTHER_COUNTY)
    r = client.post(
        "/households/import",
        content=OTHER_HOUSEHOLDS.encode(),
        headers={**other, "content-type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    account = r.json()["accounts"][0]
    river = activate(client, account["username"], account["password"], "river-pass-123")
    assert upload(client, river, "X1", GOOD).status_code == 201  # A1's and B1's photo
    assert upload(client, river, "X2", GOOD).status_code == 201
    # C1's photo with its two orientation tags: neither is byte- or pixel-identical to
    # the other, and both are matched with C1 only (a copy is not indexed), so the pair
    # goes through the other county's photo, which must not be named here
    for household, photo in (("X3", ORIENT_A), ("X4", ORIENT_B)):
        r = upload(client, river, household, photo)
        assert r.status_code == 201 and r.json()["matches"][0]["household_id"] == "C1", r.text
    refresh(client, admin)
    refresh(client, other)
    mine = findings(client, admin)
    theirs = findings(client, other)
    households = {h for f in mine for h in f["household_ids"]}
    other_households = {h for f in theirs for h in f["household_ids"]}
    ours = {"X1", "X2", "X3", "X4"}
    assert {"A1", "B1"} <= households and not households & ours
    assert other_households and other_households <= ours
    clusters = {
        tuple(sorted(f["household_ids"])): f for f in theirs if f["kind"] == "duplicate_cluster"
    }
    assert set(clusters) == {("X1", "X2"), ("X3", "X4")}
    own_photos = {p for f in theirs for p in f["photo_ids"]}
    for cluster in clusters.values():
        assert cluster["evidence"]["relation"] == "same_photo"
        for pair in cluster["evidence"]["pairs"]:
            assert {int(pair["a"]), int(pair["b"])} <= own_photos
    (through,) = clusters[("X3", "X4")]["evidence"]["pairs"]
    assert through["evidence"] == {"via": "another_county"}, through
    cluster = clusters[("X1", "X2")]
    # no probing across the border: findings and photos of the other county are 404
    assert client.get(f"/audit/findings/{cluster['id']}", headers=admin).status_code == 404
    assert client.get(f"/audit/findings/{mine[0]['id']}", headers=other).status_code == 404
    r = client.post(
        f"/audit/findings/{cluster['id']}/decision", json={"action": "confirm"}, headers=admin
    )
    assert r.status_code == 404
    progress = client.get("/progress", headers=other).json()
    assert progress["total"]["total"] == 4
