"""The audit over real HTTP: findings from real uploads, decisions and their trail,
scopes, progress and its XLSX export checked against the database."""

from __future__ import annotations

import io
import json

import httpx
import openpyxl
from sqlalchemy import func, select

from photocheck.store import Household, Photo

from .conftest import ADMIN, LiveServer, login
from .test_session import GOOD, GOOD_2, ORIENT_A, ORIENT_B, setup_campaign, upload


def duplicate_campaign(client: httpx.Client) -> tuple[dict, dict[str, dict]]:
    admin, v = setup_campaign(client)
    assert upload(client, v["东村"], "A1", GOOD).status_code == 201
    assert upload(client, v["西村"], "B1", GOOD).status_code == 201  # same photo, 2 households
    assert upload(client, v["南村"], "C1", ORIENT_A).status_code == 201
    assert upload(client, v["南村"], "C2", ORIENT_B).status_code == 201  # same, rotated tag
    return admin, v


def test_findings_decisions_and_scope(server: LiveServer, client: httpx.Client) -> None:
    admin, v = duplicate_campaign(client)
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
    again = client.get(f"/audit/findings/{dup['id']}", headers=admin).json()
    assert again["status"] == "dismissed" and len(again["events"]) == 1

    # scope: a village account may not audit; a town account sees its own town only
    r = client.get("/audit/findings", headers=v["东村"])
    assert r.status_code == 403
    r = client.post("/users/town", json={"username": "town-dh", "town": "棣花镇"}, headers=admin)
    slip = r.json()
    first = login(client, slip["username"], slip["password"])
    client.post(
        "/auth/change-password",
        json={"old_password": slip["password"], "new_password": "town-dh-pass-1"},
        headers=first,
    )
    town_user = login(client, "town-dh", "town-dh-pass-1")
    seen = client.get("/audit/findings", headers=town_user).json()["findings"]
    assert seen and all(not {"A1", "B1"} & set(f["household_ids"]) for f in seen)
    assert client.get(f"/audit/findings/{dup['id']}", headers=town_user).status_code == 404
    r = client.post(url, json={"action": "confirm"}, headers=town_user)
    assert r.status_code == 404


def test_progress_and_xlsx_match_the_database(server: LiveServer, client: httpx.Client) -> None:
    admin, _ = duplicate_campaign(client)
    body = client.get("/progress", headers=admin).json()
    total = body["total"]
    with server.app_state.db.session() as session:
        households = session.scalar(select(func.count()).select_from(Household))
        with_photo = session.scalar(select(func.count(func.distinct(Photo.household_id))))
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
        assert last[col] == total[key] == sum(row[col] for row in rows[:-1])

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
    found = client.get(
        "/audit/findings", params={"kind": "thumbnail_mismatch"}, headers=admin
    ).json()["findings"]
    assert [f["household_ids"] for f in found] == [["B1"]]
    assert found[0]["evidence"]["correlation"] < 0.85


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
    first = login(client, account["username"], account["password"])
    client.post(
        "/auth/change-password",
        json={"old_password": account["password"], "new_password": "north-pass-123"},
        headers=first,
    )
    village = login(client, account["username"], "north-pass-123")
    for i, (household, rel) in enumerate(zip(["N1", "N2", "N3", "N4", "N5", "N6"], BATCH_FILES,
                                             strict=True)):  # fmt: skip
        capture = {
            "lat": 33.7010 + 0.00002 * i,  # the village office, give or take 2 m
            "lon": 110.3010,
            "device_time": f"2026-08-03T19:{5 + i:02d}:00+08:00",
        }
        path = data_file(rel)
        r = client.post(
            f"/households/{household}/photos",
            files={"file": (path.name, path.read_bytes(), "application/octet-stream")},
            data={"capture": json.dumps(capture)},
            headers=village,
        )
        assert r.status_code == 201, r.text
    found = client.get("/audit/findings", params={"kind": "desk_batch"}, headers=admin).json()
    (batch,) = found["findings"]
    assert sorted(batch["household_ids"]) == ["N1", "N2", "N3", "N4", "N5", "N6"]
    assert batch["evidence"]["radius_m"] < 10 and batch["evidence"]["minutes"] == 5.0
    assert batch["day"] == "2026-08-03"  # the app's local day, not the UTC one


def test_offline_report_from_the_service_database(
    server: LiveServer, client: httpx.Client, tmp_path
) -> None:
    from photocheck import default_policy
    from photocheck.audit.command import write_report

    duplicate_campaign(client)
    settings = server.app_state.settings
    out = tmp_path / "report.html"
    n = write_report(
        out,
        policy=default_policy(),
        database_url=settings.database_url,
        blob_dir=settings.blob_dir,
        show_progress=False,
    )
    html = out.read_text("utf-8")
    assert n >= 2 and html.count('src="data:image/jpeg;base64,') >= 4  # 2 clusters x 2
    assert "重复照片（跨户）" in html and "龙驹寨镇" in html
