"""A scripted campaign over real HTTP: import, village logins, uploads, retakes, restart."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.conftest import data_file

from .conftest import ADMIN, LiveServer, activate, login, loopback_client

GOOD = "buildings/strecha_herz_jesu/herz_jesu_0000.jpg"
GOOD_2 = "buildings/camera_corpus/panasonic_fx7_apartment_facade.jpg"
BLURRED = "blur/kwentar_triplets/176_HONOR-7X_M.jpg"
ORIENT_A = "exif/orientation/Landscape_1.jpg"
ORIENT_B = "exif/orientation/Landscape_6.jpg"
SAME_SCENE = "buildings/strecha_herz_jesu/herz_jesu_0004.jpg"  # A1's church, another spot
SITE_PHOTO = "buildings/camera_corpus/fujifilm_ds7_2_japanese_house.jpg"

HOUSEHOLDS = """\ufeffhousehold_id,head_name,town,village,category,site_id,lat,lon
A1,张三,龙驹寨镇,东村,鉴定安全,,33.70,110.30
A2,李四,龙驹寨镇,东村,改造安全,,33.701,110.301
A3,王五,龙驹寨镇,东村,保障安全,S1,33.70,110.31
B1,赵六,龙驹寨镇,西村,appraised,,33.80,110.40
B2,孙七,龙驹寨镇,西村,secured,S1,,
C1,周八,棣花镇,南村,renovated,,33.60,110.20
C2,吴九,棣花镇,南村,appraised,,,
C3,郑十,棣花镇,南村,appraised,,,
"""


def photo(relpath: str) -> dict[str, tuple[str, bytes, str]]:
    path = data_file(relpath)
    return {"file": (path.name, path.read_bytes(), "image/jpeg")}


def upload(
    client: httpx.Client,
    headers: dict,
    household: str,
    relpath: str,
    key: str | None = None,
    **kw: Any,
) -> httpx.Response:
    if key is not None:
        headers = {**headers, "Idempotency-Key": key}
    return client.post(
        f"/households/{household}/photos", files=photo(relpath), headers=headers, **kw
    )


def codes(body: dict) -> set[str]:
    return {r["code"] for r in body["reasons"]}


def setup_campaign(client: httpx.Client) -> tuple[dict, dict[str, dict]]:
    """Import the households; log every village in and change its initial password."""
    admin = login(client, *ADMIN)
    r = client.post(
        "/households/import",
        content=HOUSEHOLDS.encode(),
        headers={**admin, "content-type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["created"], out["villages_created"], out["towns_created"]) == (8, 3, 2)
    villages = {}
    for account in out["accounts"]:
        first = login(client, account["username"], account["password"])
        assert client.get("/retakes", headers=first).json()["error"]["code"] == (
            "PASSWORD_CHANGE_REQUIRED"
        )
        villages[account["village"]] = activate(client, account["username"], account["password"])
    return admin, villages


def test_campaign_session(server: LiveServer, client: httpx.Client) -> None:
    admin, v = setup_campaign(client)
    east, west, south = v["东村"], v["西村"], v["南村"]

    # good photo: kept, not rejected, no duplicate
    r = upload(client, east, "A1", GOOD, key="a1-first")
    assert r.status_code == 201, r.text
    good = r.json()
    assert good["verdict"] != "reject" and good["photo_id"] and good["matches"] == []
    assert good["household_id"] == "A1" and good["retake_required"] is False

    # the same key again: the same answer, 200, nothing stored twice
    again = upload(client, east, "A1", GOOD, key="a1-first")
    assert again.status_code == 200 and again.json() == {**good}

    # blurred: rejected, on the village's retake list
    r = upload(client, east, "A2", BLURRED)
    assert r.status_code == 201 and r.json()["verdict"] == "reject", r.text
    assert r.json()["retake_required"] is True
    retakes = client.get("/retakes", headers=east).json()
    assert [x["household_id"] for x in retakes] == ["A2"]
    assert retakes[0]["reasons"] and retakes[0]["village"] == "东村"
    assert client.get("/retakes", headers=west).json() == []
    assert [x["household_id"] for x in client.get("/retakes", headers=admin).json()] == ["A2"]

    # the same photo for another household (another village): DUPLICATE_PHOTO naming A1
    r = upload(client, west, "B1", GOOD)
    dup = r.json()
    assert r.status_code == 201 and dup["verdict"] == "reject"
    assert "DUPLICATE_PHOTO" in codes(dup)
    reason = next(x for x in dup["reasons"] if x["code"] == "DUPLICATE_PHOTO")
    assert reason["evidence"]["other_household_id"] == "A1"
    assert dup["matches"][0]["household_id"] == "A1"
    assert dup["matches"][0]["relation"] == "same_photo"

    # a retake of A1's own photo is not a duplicate
    r = upload(client, east, "A1", GOOD)
    assert "DUPLICATE_PHOTO" not in codes(r.json())

    # orientation variants of one picture for two households: the second is a duplicate
    r = upload(client, south, "C1", ORIENT_A)
    assert "DUPLICATE_PHOTO" not in codes(r.json())
    r = upload(client, south, "C2", ORIENT_B)
    assert "DUPLICATE_PHOTO" in codes(r.json()), r.text
    assert r.json()["matches"][0]["household_id"] == "C1"

    # the same building shot from elsewhere for another household: answered at once
    # with "scene check pending"; after the check, SAME_SCENE (review) on the record
    r = upload(client, south, "C3", SAME_SCENE)
    answer = r.json()
    assert r.status_code == 201 and answer["scene_check"]["status"] == "pending", r.text
    assert answer["scene_check"]["message_zh"] and answer["scene_check"]["message"]
    assert server.app_state.intake.drain(timeout=120)
    record = client.get("/households/C3", headers=south).json()
    assert record["scene_check"] is None and record["current_photo"]["scene_check"] is None
    scene = record["current_photo"]
    assert "SAME_SCENE" in codes(scene) and "DUPLICATE_PHOTO" not in codes(scene), scene
    assert scene["verdict"] == "review"
    reason = next(x for x in scene["reasons"] if x["code"] == "SAME_SCENE")
    assert reason["evidence"]["other_household_id"] == "A1"

    # a shared-site photo: allowed for households linked to site S1, not for others
    assert "DUPLICATE_PHOTO" not in codes(upload(client, east, "A3", SITE_PHOTO).json())
    assert "DUPLICATE_PHOTO" not in codes(upload(client, west, "B2", SITE_PHOTO).json())
    assert "DUPLICATE_PHOTO" in codes(upload(client, east, "A2", SITE_PHOTO).json())

    # practice (模拟录入): answered, nothing stored
    before = client.get("/households/B1", headers=west).json()
    r = upload(client, west, "B1", GOOD_2, params={"practice": "true"})
    assert r.status_code == 201 and r.json()["photo_id"] is None and r.json()["practice"] is True
    assert client.get("/households/B1", headers=west).json() == before

    # the retake loop: a good photo takes A2 off the list (history keeps the reject)
    r = upload(client, east, "A2", GOOD_2, data={"capture": json.dumps({"lat": 33.701})})
    assert r.status_code == 201 and r.json()["verdict"] != "reject", r.text
    assert client.get("/retakes", headers=east).json() == []
    a2 = client.get("/households/A2", headers=east).json()
    assert a2["status"] != "reject" and len(a2["history"]) == 3
    assert [p["verdict"] for p in a2["history"]][-1] == "reject"
    assert a2["current_photo"]["export_name"] == "丹凤县/龙驹寨镇/东村/A2_李四.jpg"

    # permissions: another village's household is 403 to read and to upload
    assert client.get("/households/A1", headers=west).status_code == 403
    r = upload(client, west, "A1", GOOD_2)
    assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN"
    assert client.get("/households/A1", headers=admin).status_code == 200
    r = upload(client, admin, "A1", GOOD_2)
    assert r.status_code == 403  # the county audits; only the verifier uploads

    # a town account reads its villages only
    r = client.post("/users/town", json={"username": "town-ljz", "town": "龙驹寨镇"}, headers=admin)
    assert r.status_code == 201, r.text
    slip = r.json()
    town = activate(client, slip["username"], slip["password"], "town-pass-123")
    assert client.get("/households/B1", headers=town).status_code == 200
    assert client.get("/households/C1", headers=town).status_code == 403

    # restart: nothing lost, and the duplicate index is rebuilt from the database (the
    # scene checks queued above finished first: one still pending would finish after
    # the restart and change its household's record)
    assert server.app_state.intake.drain(timeout=120)
    snapshot = {h: client.get(f"/households/{h}", headers=admin).json() for h in ("A1", "A2", "B1")}
    server.restart()
    admin = login(client, *ADMIN)
    for h, body in snapshot.items():
        assert client.get(f"/households/{h}", headers=admin).json() == body
    west = login(client, "v1-0002", "v1-0002-new-pass")
    r = upload(client, west, "B1", GOOD)
    assert "DUPLICATE_PHOTO" in codes(r.json())
    again = upload(client, east, "A1", GOOD, key="a1-first")
    assert again.status_code == 200 and again.json() == good
    health = httpx.get(server.url + "/health").json()
    assert health["reconcile"]["missing_blobs"] == []


def test_errors_are_json(server: LiveServer, client: httpx.Client) -> None:
    _, v = setup_campaign(client)
    east = v["东村"]
    # 401: no token, bad token, wrong password
    r = client.get("/retakes")
    assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHORIZED"
    r = client.get("/retakes", headers={"Authorization": "Bearer nonsense"})
    assert r.status_code == 401
    r = client.post("/auth/token", data={"username": ADMIN[0], "password": "wrong"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "BAD_CREDENTIALS"
    # 404 unknown household, 415 not an image, 413 too large (limit 8 MB here)
    r = upload(client, east, "NOPE", GOOD)
    assert r.status_code == 404 and r.json()["error"]["code"] == "HOUSEHOLD_NOT_FOUND"
    r = client.post(
        "/households/A1/photos", files={"file": ("x.pdf", b"%PDF-1.4 hi", "x")}, headers=east
    )
    assert r.status_code == 415 and r.json()["error"]["code"] == "NOT_AN_IMAGE"
    r = client.post("/households/A1/photos", content=b"raw", headers=east)
    assert r.status_code == 415
    big = b"\xff\xd8\xff\xe0" + bytes(9 * 1024 * 1024)
    r = client.post(
        "/households/A1/photos", files={"file": ("big.jpg", big, "image/jpeg")}, headers=east
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    # 422: no file part, bad capture JSON; never a stack trace
    r = client.post("/households/A1/photos", files={"other": ("a", b"x")}, headers=east)
    assert r.status_code == 422 and "error" in r.json()
    r = upload(client, east, "A1", GOOD, data={"capture": "{not json"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "INVALID_REQUEST"
    r = client.post("/auth/token", data={})
    assert r.status_code == 422 and set(r.json()["error"]) >= {"code", "message"}
    # nothing was stored by any of these
    assert client.get("/households/A1", headers=east).json()["history"] == []
    assert not list((server.settings.DATA_DIR / "blobs" / "tmp").iterdir())


def test_racing_retries_and_racing_duplicates(server: LiveServer, client: httpx.Client) -> None:
    _, v = setup_campaign(client)
    east, west = v["东村"], v["西村"]

    # two retries with one key at the same moment: one record, the same answer
    def send(_: int) -> httpx.Response:
        with loopback_client(client.base_url, timeout=120) as c:
            return upload(c, east, "A1", GOOD, key="race-1")

    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(send, range(2))
    assert sorted([a.status_code, b.status_code]) == [200, 201]
    assert a.json() == b.json()
    assert len(client.get("/households/A1", headers=east).json()["history"]) == 1

    # two households upload the same photo at the same moment: exactly one passes
    def other(args: tuple[dict, str]) -> httpx.Response:
        headers, household = args
        with loopback_client(client.base_url, timeout=120) as c:
            return upload(c, headers, household, GOOD_2)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(other, [(east, "A2"), (west, "B1")]))
    dup_flags = ["DUPLICATE_PHOTO" in codes(r.json()) for r in results]
    assert sorted(dup_flags) == [False, True], [r.json() for r in results]
