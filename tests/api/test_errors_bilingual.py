"""Every error answer carries ``message_zh`` (Chinese) beside ``message``, over HTTP:
auth, scope, import rows, validation (naming the field), capture, uploads, unknown
routes; and an /audit page error is an HTML page in Chinese, not raw JSON."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from api.routes.audit_pages import COOKIE

from ..conftest import data_file
from .conftest import ADMIN, LiveServer, activate, login, loopback_client

CJK = re.compile(r"[\u4e00-\u9fff]")
GOOD = "buildings/strecha_herz_jesu/herz_jesu_0000.jpg"
HOUSEHOLDS = """household_id,head_name,town,village,category
E1,张三,龙驹寨镇,东村,鉴定安全
W1,赵六,龙驹寨镇,西村,appraised
"""


@pytest.fixture(scope="module")
def client(module_server: LiveServer) -> Iterator[httpx.Client]:
    with loopback_client(module_server.url + "/api/v1", timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def campaign(client: httpx.Client) -> dict[str, Any]:
    admin = login(client, *ADMIN)
    r = client.post(
        "/households/import",
        content=HOUSEHOLDS.encode(),
        headers={**admin, "content-type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    accounts = {a["village"]: a for a in r.json()["accounts"]}
    east = accounts["东村"]
    fresh = login(client, east["username"], east["password"])
    return {
        "admin": admin,
        "fresh": fresh,  # before the required password change
        "west": activate(client, accounts["西村"]["username"], accounts["西村"]["password"]),
        "east_account": east,
    }


def bilingual(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["message"]
    assert isinstance(err.get("message_zh"), str) and CJK.search(err["message_zh"]), err
    assert err["message_zh"] != err["message"]
    if code is not None:
        assert err["code"] == code, err
    return dict(err)


def test_auth_errors(client: httpx.Client, campaign: dict[str, Any]) -> None:
    bilingual(client.get("/retakes"), 401, "UNAUTHORIZED")
    bilingual(client.get("/retakes", headers={"Authorization": "Bearer x"}), 401)
    wrong = client.post("/auth/token", data={"username": ADMIN[0], "password": "wrong"})
    assert "密码" in bilingual(wrong, 401, "BAD_CREDENTIALS")["message_zh"]
    bilingual(client.get("/retakes", headers=campaign["fresh"]), 403, "PASSWORD_CHANGE_REQUIRED")
    old = client.post(
        "/auth/change-password",
        json={"old_password": "not-it", "new_password": "whatever-long-1"},
        headers=campaign["fresh"],
    )
    assert "原密码" in bilingual(old, 403, "BAD_CREDENTIALS")["message_zh"]


def test_validation_errors_name_the_field(client: httpx.Client, campaign: dict[str, Any]) -> None:
    err = bilingual(client.post("/auth/token", data={"username": "x"}), 422, "INVALID_REQUEST")
    assert "password" in err["message"] and "password" in err["message_zh"]
    assert err["details"][0]["field"] == "password" and CJK.search(err["details"][0]["message_zh"])
    r = client.post("/auth/change-password", json={"old_password": "a"}, headers=campaign["fresh"])
    err = bilingual(r, 422, "INVALID_REQUEST")
    assert "new_password" in err["message"] and "new_password" in err["message_zh"]


def test_scope_and_role_errors(client: httpx.Client, campaign: dict[str, Any]) -> None:
    path = data_file(GOOD)
    files = {"file": (path.name, path.read_bytes(), "image/jpeg")}
    r = client.post("/households/E1/photos", files=files, headers=campaign["west"])
    assert "E1" in bilingual(r, 403, "FORBIDDEN")["message_zh"]
    r = client.post("/households/E1/photos", files=files, headers=campaign["admin"])
    bilingual(r, 403, "FORBIDDEN")
    bilingual(client.get("/households/NOPE", headers=campaign["admin"]), 404, "HOUSEHOLD_NOT_FOUND")
    r = client.post("/households/import", content=b"x", headers=campaign["west"])
    bilingual(r, 403, "FORBIDDEN")


def test_upload_errors(client: httpx.Client, campaign: dict[str, Any]) -> None:
    west = campaign["west"]
    r = client.post(
        "/households/W1/photos", files={"file": ("x.pdf", b"%PDF-1.4", "x")}, headers=west
    )
    bilingual(r, 415, "NOT_AN_IMAGE")
    bilingual(client.post("/households/W1/photos", content=b"raw", headers=west), 415)
    r = client.post("/households/W1/photos", files={"other": ("a", b"x")}, headers=west)
    bilingual(r, 422, "INVALID_REQUEST")
    path = data_file(GOOD)
    files = {"file": (path.name, path.read_bytes(), "image/jpeg")}
    r = client.post("/households/W1/photos", files=files, data={"capture": "{no"}, headers=west)
    assert "capture" in bilingual(r, 422, "INVALID_REQUEST")["message_zh"]
    bad = '{"lat": 120, "lon": 110.3}'
    r = client.post("/households/W1/photos", files=files, data={"capture": bad}, headers=west)
    err = bilingual(r, 422, "INVALID_REQUEST")
    assert "capture.lat" in err["message"] and "capture.lat" in err["message_zh"]
    assert client.get("/households/W1", headers=west).json()["history"] == []


def test_import_row_errors(client: httpx.Client, campaign: dict[str, Any]) -> None:
    csv = "household_id,head_name,town,village,category,lat,lon\nX1,,镇,村,nope,91,1\n"
    r = client.post(
        "/households/import",
        content=csv.encode(),
        headers={**campaign["admin"], "content-type": "text/csv"},
    )
    err = bilingual(r, 422, "IMPORT_INVALID")
    assert len(err["details"]) >= 3
    for row in err["details"]:
        assert row["row"] == 2 and CJK.search(row["message_zh"]), row


def test_http_errors(module_server: LiveServer, client: httpx.Client) -> None:
    bilingual(client.get("/no-such-route"), 404)
    bilingual(client.delete("/retakes"), 405)


def test_login_throttle_is_bilingual(client: httpx.Client, campaign: dict[str, Any]) -> None:
    user = campaign["east_account"]["username"]
    for _ in range(8):
        r = client.post("/auth/token", data={"username": user, "password": "wrong"})
        bilingual(r, r.status_code)
        assert r.status_code in (401, 429)


def test_audit_page_of_a_village_account_is_a_page(
    module_server: LiveServer, campaign: dict[str, Any]
) -> None:
    token = campaign["west"]["Authorization"].split()[1]
    with loopback_client(module_server.url, timeout=60) as web:
        web.cookies.set(COOKIE, token)
        r = web.get("/audit")
        assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
        assert "审计仅供县级和乡镇账号使用" in r.text and "{" not in r.text.split("<main>")[1][:80]
        r = web.get("/audit?lang=en")
        assert r.status_code == 403 and "county and town accounts" in r.text
