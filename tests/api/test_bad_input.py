"""Bad input over real HTTP, on SQLite and PostgreSQL: a clear 4xx, never a 500.

Control characters anywhere (path, query, form, JSON, multipart, CSV), out-of-range IDs,
null where a value is required, deeply nested capture JSON, an Idempotency-Key reused
for another photo. One server per database for the module: these requests change
nothing, which each test also checks.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import data_file

from .conftest import (
    ADMIN,
    LiveServer,
    _pg_url,
    activate,
    login,
    loopback_client,
    make_settings,
    seed_admin,
)

GOOD = "buildings/strecha_herz_jesu/herz_jesu_0000.jpg"
OTHER = "buildings/camera_corpus/panasonic_fx7_apartment_facade.jpg"
HOUSEHOLDS = """household_id,head_name,town,village,category,site_id,lat,lon
A1,张三,龙驹寨镇,东村,鉴定安全,,33.70,110.30
A2,李四,龙驹寨镇,东村,改造安全,,33.701,110.301
A3,王五,龙驹寨镇,东村,保障安全,S1,33.70,110.31
"""
BIG_ID = "99999999999999999999"
JUST_OVER_INT64 = str(2**63)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, httpx.Client, dict[str, str], dict[str, str]]]:
    """(server, client, county headers, village headers) with three households and a site."""
    tmp = tmp_path_factory.mktemp(f"bad_input_{request.param}")
    schema = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'photocheck.sqlite3'}"
    else:
        base = _pg_url()
        schema = f"t_{uuid.uuid4().hex[:12]}"
        with create_engine(base).begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in base else "?"
        url = f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    settings = make_settings(tmp, url)
    seed_admin(settings)
    server = LiveServer(settings)
    server.start()
    with loopback_client(server.url + "/api/v1", timeout=120) as client:
        admin = login(client, *ADMIN)
        r = client.post(
            "/households/import",
            content=HOUSEHOLDS.encode(),
            headers={**admin, "content-type": "text/csv"},
        )
        assert r.status_code == 200, r.text
        account = r.json()["accounts"][0]
        village = activate(client, account["username"], account["password"])
        site = {"site_id": "S1", "name": "幸福家园", "kind": "relocation", "town": "龙驹寨镇"}
        assert client.post("/sites", json=site, headers=admin).status_code == 201
        yield server, client, admin, village
    server.stop()
    if schema is not None:
        with create_engine(_pg_url()).begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def _photo(relpath: str) -> dict[str, tuple[str, bytes, str]]:
    path = data_file(relpath)
    return {"file": (path.name, path.read_bytes(), "image/jpeg")}


def _refused(r: httpx.Response, where: str) -> None:
    assert r.status_code == 422, (where, r.status_code, r.text)
    error = r.json()["error"]
    assert error["code"] == "INVALID_REQUEST", r.text
    assert where in error["message"], (where, error["message"])
    assert "control character" in error["message"], error["message"]


def test_control_characters_are_422_on_both_databases(live: tuple) -> None:
    server, client, admin, village = live
    # /auth/token without a login: a NUL in the username or the password (PG: was 500)
    r = client.post("/auth/token", data={"username": "ad\x00min", "password": "x"})
    _refused(r, "body.username")
    r = client.post("/auth/token", data={"username": ADMIN[0], "password": "a\x00b"})
    _refused(r, "body.password")
    # path and query
    _refused(client.get("/households/A%001", headers=village), "path.household_id")
    _refused(client.get("/households/A%0A1", headers=village), "path.household_id")
    _refused(client.get("/audit/findings?town=%00", headers=admin), "query.town")
    _refused(client.get("/progress?village=x%1Fy", headers=admin), "query.village")
    _refused(client.get("/sites/S%00", headers=admin), "path.site_id")
    # JSON bodies: names and IDs; a note may have line breaks but no NUL
    site: dict[str, object] = {"site_id": "S2", "name": "福\x00寿园", "kind": "nursing_home",
                               "town": "龙驹寨镇"}  # fmt: skip
    _refused(client.post("/sites", json=site, headers=admin), "body.name")
    site = {**site, "name": "福寿园", "households": ["A\x001"]}
    _refused(client.post("/sites", json=site, headers=admin), "body.households.0")
    r = client.post("/users/town", json={"username": "t\x00wn", "town": "龙驹寨镇"}, headers=admin)
    _refused(r, "body.username")
    r = client.patch("/sites/S1", json={"name": "a\tb"}, headers=admin)
    _refused(r, "body.name")
    r = client.post("/audit/findings/nope/decision", json={"action": "confirm", "note": "a\x00"},
                    headers=admin)  # fmt: skip
    _refused(r, "body.note")
    r = client.post("/audit/findings/nope/decision", json={"action": "confirm", "note": "a\nb"},
                    headers=admin)  # fmt: skip
    assert r.status_code == 404, r.text  # line breaks in a note are fine
    r = client.post(
        "/auth/change-password",
        json={"old_password": "x\x00", "new_password": "long-enough-1"},
        headers=village,
    )
    _refused(r, "body.old_password")
    # multipart upload: the file name and the capture JSON
    raw = (  # by hand: httpx would percent-encode the NUL of a file name
        b'--xx\r\nContent-Disposition: form-data; name="file"; filename="a\x00.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n" + data_file(GOOD).read_bytes() + b"\r\n--xx--\r\n"
    )
    ctype = {"content-type": "multipart/form-data; boundary=xx"}
    r = client.post("/households/A1/photos", content=raw, headers={**village, **ctype})
    _refused(r, "file.filename")
    r = client.post(
        "/households/A1/photos",
        files=_photo(GOOD),
        data={"capture": '{"device_id": "ph\\u0000ne"}'},
        headers=village,
    )
    _refused(r, "capture.device_id")
    # a household file with a NUL in a cell: refused by row and column, nothing imported
    bad_csv = HOUSEHOLDS + "A4,赵\x00六,龙驹寨镇,东村,鉴定安全,,,\n"
    r = client.post(
        "/households/import",
        content=bad_csv.encode(),
        headers={**admin, "content-type": "text/csv"},
    )
    assert r.status_code == 422, r.text
    [detail] = r.json()["error"]["details"]
    assert {k: detail[k] for k in ("row", "column", "message")} == {
        "row": 5,
        "column": "head_name",
        "message": "contains a control character (U+0000)",
    }
    assert "head_name" in detail["message_zh"]
    # the audit page's login form
    page = httpx.post(
        server.url + "/audit/login", data={"username": "a\x00", "password": "x"}, timeout=60
    )
    assert page.status_code == 422, page.text
    # nothing was stored by any of these
    assert client.get("/households/A1", headers=village).json()["history"] == []
    assert client.get("/households/A4", headers=admin).status_code == 404
    assert client.get("/sites/S2", headers=admin).status_code == 404
    assert client.get("/sites/S1", headers=admin).json()["name"] == "幸福家园"


def test_out_of_range_ids_and_nulls_are_4xx(live: tuple) -> None:
    server, client, admin, _ = live
    for path in (
        f"/villages/{BIG_ID}/drone-package",
        f"/villages/{JUST_OVER_INT64}/drone-package",
        f"/sites/S1/photos/{JUST_OVER_INT64}/file",
        f"/audit/findings?offset={BIG_ID}",
    ):
        r = client.get(path, headers=admin)
        assert r.status_code == 422, (path, r.text)
        assert r.json()["error"]["code"] == "INVALID_REQUEST"
    for query in (f"town={BIG_ID}", f"village={BIG_ID}", f"town={JUST_OVER_INT64}", "town=²"):
        for path in ("/audit/findings",):
            r = client.get(f"{path}?{query}", headers=admin)
            assert r.status_code == 404, (path, query, r.text)
            assert r.json()["error"]["code"] in {"TOWN_NOT_FOUND", "VILLAGE_NOT_FOUND"}
    # the audit pages (a logged-in county official)
    with loopback_client(server.url, timeout=60) as pages:
        r = pages.post("/audit/login", data={"username": ADMIN[0], "password": ADMIN[1]})
        assert r.status_code in (200, 303), r.text
        for path in (
            f"/audit/photos/{JUST_OVER_INT64}/full",
            f"/audit/photos/{BIG_ID}/preview",
            f"/audit?town={BIG_ID}",
            f"/audit?village={JUST_OVER_INT64}",
        ):
            r = pages.get(path)
            assert r.status_code == 422, (path, r.status_code, r.text[:300])
    # PATCH with null where a value is required (was 500); an unknown kind
    for body in ({"kind": None}, {"name": None}, {"kind": "school"}):
        r = client.patch("/sites/S1", json=body, headers=admin)
        assert r.status_code == 422, (body, r.text)
        assert "kind" in r.text or "name" in r.text
    r = client.patch("/sites/S1", json={"kind": "敬老院"}, headers=admin)
    assert r.status_code == 200 and r.json()["kind"] == "nursing_home", r.text
    r = client.patch("/sites/S1", json={"kind": "relocation"}, headers=admin)
    assert r.status_code == 200, r.text


def test_deeply_nested_capture_is_422_naming_the_field(live: tuple) -> None:
    _, client, _, village = live
    for capture in ("[" * 60000, '{"a":' * 12000, "[1]", '"text"'):
        r = client.post(
            "/households/A2/photos", files=_photo(GOOD), data={"capture": capture}, headers=village
        )
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert "capture" in error["message"] and "capture" in error["message_zh"], r.text
    assert client.get("/households/A2", headers=village).json()["history"] == []


def test_idempotency_key_reused_for_another_photo_is_422(live: tuple) -> None:
    _, client, _, village = live
    headers = {**village, "Idempotency-Key": f"key-{uuid.uuid4().hex}"}
    first = client.post("/households/A3/photos", files=_photo(GOOD), headers=headers)
    assert first.status_code == 201, first.text
    again = client.post("/households/A3/photos", files=_photo(GOOD), headers=headers)
    assert again.status_code == 200 and again.json() == first.json()
    other = client.post("/households/A3/photos", files=_photo(OTHER), headers=headers)
    assert other.status_code == 422, other.text
    error = other.json()["error"]
    assert error["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert "another photo" in error["message"] and "SHA-256" in error["message"]
    elsewhere = client.post("/households/A2/photos", files=_photo(GOOD), headers=headers)
    assert elsewhere.status_code == 422, elsewhere.text
    assert "household 'A3'" in elsewhere.json()["error"]["message"]
    history = client.get("/households/A3", headers=village).json()["history"]
    assert [p["photo_id"] for p in history] == [first.json()["photo_id"]]
    assert client.get("/households/A2", headers=village).json()["history"] == []
