"""Roles as documented (issue 9 item 8), table-driven over a real server: every
state-changing route, and the reads whose scope differs by role, called by every role.

county administers and audits; a town reads its villages (never decides a finding); a
village sees its own households and only the sites linked to them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import data_file

from .conftest import ADMIN, LiveServer, activate, login, loopback_client, make_settings, seed_admin
from .test_audit import refresh

HOUSEHOLDS = """\ufeffhousehold_id,head_name,town,village,category,site_id,lat,lon
A1,张三,龙驹寨镇,东村,鉴定安全,,33.70,110.30
A2,李四,龙驹寨镇,东村,保障安全,S1,,
B1,赵六,龙驹寨镇,西村,appraised,,33.80,110.40
C1,周八,棣花镇,南村,renovated,,33.60,110.20
"""
GOOD = "buildings/strecha_herz_jesu/herz_jesu_0000.jpg"
DRONE = ["drone/openmvg_palm_desert_dji_mini2/DJI_0042.JPG",
         "drone/openmvg_palm_desert_dji_mini2/DJI_0045.JPG"]  # fmt: skip
ROLES = ("county", "town_own", "town_other", "village_own", "village_other", "anon")
ROLE_INDEX = {r: i for i, r in enumerate(ROLES)}


def _file(relpath: str) -> dict[str, tuple[str, bytes, str]]:
    path = data_file(relpath)
    return {"file": (path.name, path.read_bytes(), "image/jpeg")}


@dataclass
class World:
    live: LiveServer
    headers: dict[str, dict[str, str]]  # role -> bearer header ({} for anon)
    ids: dict[str, Any]  # finding, site photos, villages


@pytest.fixture(scope="module")
def world(module_db: tuple[str, Path]) -> Iterator[World]:
    url, tmp = module_db
    settings = make_settings(tmp, url, LOGIN_ATTEMPTS_PER_MINUTE=10_000)
    seed_admin(settings)
    live = LiveServer(settings)
    live.start()
    with loopback_client(live.url + "/api/v1", timeout=120) as c:
        admin = login(c, *ADMIN)
        r = c.post("/households/import", content=HOUSEHOLDS.encode(),
                   headers={**admin, "content-type": "text/csv"})  # fmt: skip
        assert r.status_code == 200, r.text
        slips = {a["village"]: a for a in r.json()["accounts"]}
        v_east = activate(c, slips["东村"]["username"], slips["东村"]["password"])
        v_west = activate(c, slips["西村"]["username"], slips["西村"]["password"])
        towns = {}
        for name, town in (
            ("town-lj", "龙驹寨镇"),
            ("town-dh", "棣花镇"),
            ("town-spare", "棣花镇"),
        ):
            r = c.post("/users/town", json={"username": name, "town": town}, headers=admin)
            assert r.status_code == 201, r.text
            towns[name] = activate(c, name, r.json()["password"], f"{name}-pass-1")
        site = {"kind": "移民搬迁点", "lat": 33.6275, "lon": -116.4052}
        for code, name, town in (("S1", "幸福家园", "龙驹寨镇"), ("S2", "福寿园", "棣花镇")):
            body = {**site, "site_id": code, "name": name, "town": town}
            assert c.post("/sites", json=body, headers=admin).status_code == 201
        photos = {}
        for code, relpath in zip(("S1", "S2"), DRONE, strict=True):
            r = c.post(f"/sites/{code}/photos", files=_file(relpath), headers=admin)
            assert r.status_code == 201, r.text
            photos[code] = r.json()["photo_id"]
        sites = {s["site_id"]: s for s in c.get("/sites", headers=admin).json()}
        (east,) = sites["S1"]["villages"]
        # the same photo for two households of the town: a duplicate finding
        for headers, household in ((v_east, "A1"), (v_west, "B1")):
            r = c.post(f"/households/{household}/photos", files=_file(GOOD), headers=headers)
            assert r.status_code == 201, r.text
        refresh(c, admin)
        found = c.get("/audit/findings", params={"kind": "duplicate_cluster"}, headers=admin)
        (finding,) = found.json()["findings"]
    by_role = {"county": admin, "town_own": towns["town-lj"], "town_other": towns["town-dh"],
               "village_own": v_east, "village_other": v_west, "anon": {}}  # fmt: skip
    ids = {"finding": finding["id"], "p1": photos["S1"], "p2": photos["S2"],
           "east": east["village_id"]}  # fmt: skip
    yield World(live, by_role, ids)
    live.stop()


@dataclass(frozen=True)
class Case:
    method: str
    path: str  # {finding} {p1} {p2} {east} filled in from the world
    expect: tuple[int, int, int, int, int, int]  # county, town own/other, village own/other, anon
    json: Any = None
    csv: bool = False
    files: str | None = None  # "photo" (a real photo) or "junk" (not an image)
    params: dict[str, str] | None = None


N = 401  # no token
# state-changing routes: who gets past the role check (the county's calls are made
# harmless where possible: a body the handler refuses, after the role check passed)
WRITES = [
    Case("POST", "/households/import", (422, 403, 403, 403, 403, N), csv=True),
    Case("POST", "/households/A1/photos", (403, 403, 403, 201, 403, N), files="photo",
         params={"practice": "true"}),
    Case("POST", "/sites", (422, 403, 403, 403, 403, N),
         json={"site_id": "S9", "name": "x", "kind": "school", "town": "龙驹寨镇"}),
    Case("PATCH", "/sites/S1", (200, 403, 403, 403, 403, N), json={"name": "幸福家园"}),
    Case("PUT", "/sites/S1/households", (200, 403, 403, 403, 403, N), json={"households": ["A2"]}),
    Case("POST", "/sites/S1/photos", (415, 403, 403, 403, 403, N), files="junk"),
    Case("POST", "/users/town", (404, 403, 403, 403, 403, N),
         json={"username": "t-new", "town": "没有这个镇"}),
    Case("POST", "/users/town-spare/reset-password", (200, 403, 403, 403, 403, N)),
    Case("POST", "/audit/refresh", (202, 403, 403, 403, 403, N)),
    Case("POST", "/audit/findings/{finding}/decision", (200, 403, 403, 403, 403, N),
         json={"action": "confirm"}),
    # the look-back re-check: the county's (an unknown town / run after the role check)
    Case("POST", "/rechecks", (404, 403, 403, 403, 403, N), json={"town": "没有这个镇"}),
    Case("POST", "/rechecks/999999/pause", (404, 403, 403, 403, 403, N)),
    Case("POST", "/rechecks/999999/resume", (404, 403, 403, 403, 403, N)),
    Case("POST", "/rechecks/999999/confirm", (404, 403, 403, 403, 403, N)),
    Case("POST", "/auth/change-password", (403, 403, 403, 403, 403, N),
         json={"old_password": "not-the-password", "new_password": "whatever-123"}),
]  # fmt: skip
# reads whose answer depends on the role
READS = [
    Case("GET", "/households/A1", (200, 200, 403, 200, 403, N)),
    Case("GET", "/sites/S1", (200, 200, 403, 200, 403, N)),
    Case("GET", "/sites/S1/photos/{p1}/file", (200, 200, 403, 200, 403, N)),
    Case("GET", "/sites/S2/photos/{p2}/file", (200, 403, 200, 403, 403, N)),
    Case("GET", "/villages/{east}/drone-package", (200, 200, 403, 200, 403, N)),
    Case("GET", "/progress", (200, 200, 200, 403, 403, N)),
    Case("GET", "/progress", (200, 200, 200, 403, 403, N), params={"format": "csv"}),
    Case("GET", "/audit/findings", (200, 200, 200, 403, 403, N)),
    Case("GET", "/rechecks", (200, 200, 200, 403, 403, N)),
    Case("GET", "/rechecks/999999", (404, 404, 404, 403, 403, N)),
]  # fmt: skip
# the only state-changing routes anyone may call without a token
PUBLIC = {("POST", "/api/v1/auth/token"), ("POST", "/audit/login")}
# the /audit page's forms (cookie sessions; village accounts cannot open the page)
PAGE_WRITES = {("POST", "/audit/logout"), ("POST", "/audit/refresh"),
               ("POST", "/audit/findings/{finding_id}/decision"), ("POST", "/audit/recheck"),
               ("POST", "/audit/recheck/{run_id}/pause"),
               ("POST", "/audit/recheck/{run_id}/resume"),
               ("POST", "/audit/recheck/{run_id}/confirm")}  # fmt: skip


def _call(world: World, case: Case, role: str) -> httpx.Response:
    path = case.path.format(**world.ids)
    kw: dict[str, Any] = {"headers": dict(world.headers[role]), "params": case.params}
    if case.json is not None:
        kw["json"] = case.json
    if case.csv:
        kw["content"] = b"not,a,household,file\n"
        kw["headers"]["content-type"] = "text/csv"
    if case.files == "photo":
        kw["files"] = _file(GOOD)
    elif case.files == "junk":
        kw["files"] = {"file": ("x.jpg", b"not an image at all", "image/jpeg")}
    with loopback_client(world.live.url + "/api/v1", timeout=120) as c:
        return c.request(case.method, path, **kw)


@pytest.mark.parametrize("role", ROLES)
def test_role_by_route(world: World, role: str) -> None:
    wrong = []
    for case in WRITES + READS:
        r = _call(world, case, role)
        expected = case.expect[ROLE_INDEX[role]]
        if r.status_code != expected:
            where = f"{case.method} {case.path} {case.params or ''}"
            wrong.append(f"{where}: {r.status_code} != {expected} {r.text[:200]}")
        elif r.status_code == 403 and case.path != "/auth/change-password":
            assert r.json()["error"]["code"] == "FORBIDDEN", r.text
    assert not wrong, "\n".join(wrong)


def test_every_state_changing_route_is_in_the_table(world: World) -> None:
    routes = {
        (m, r.path)
        for r in world.live._server.config.app.routes  # type: ignore[union-attr]
        for m in getattr(r, "methods", ()) or ()
        if m in ("POST", "PUT", "PATCH", "DELETE")
    }
    table = {(c.method, "/api/v1" + re.sub(r"\{(\w+)\}", "{x}", c.path)) for c in WRITES}
    norm = {(m, re.sub(r"\{(\w+)\}", "{x}", p)) for m, p in routes}
    pages = {(m, re.sub(r"\{(\w+)\}", "{x}", p)) for m, p in PAGE_WRITES}
    missing = norm - table - PUBLIC - pages
    assert not missing, f"state-changing routes without a row in WRITES: {sorted(missing)}"


def test_site_lists_and_bilingual_refusals(world: World) -> None:
    seen = {}
    with loopback_client(world.live.url + "/api/v1", timeout=120) as c:
        for role in ROLES[:5]:
            r = c.get("/sites", headers=world.headers[role])
            assert r.status_code == 200, r.text
            seen[role] = sorted(s["site_id"] for s in r.json())
        (s1,) = [s for s in c.get("/sites", headers=world.headers["village_own"]).json()]
        assert s1["households"] == ["A2"]  # only its own linked households are named
        town = world.headers["town_own"]
        url = f"/audit/findings/{world.ids['finding']}/decision"
        r = c.post(url, json={"action": "dismiss", "note": "x"}, headers=town)
        err = r.json()["error"]
        assert r.status_code == 403 and re.search(r"[\u4e00-\u9fff]", err["message_zh"]), err
        r = c.get("/sites/S2", headers=world.headers["village_own"])
        assert r.status_code == 403 and r.json()["error"]["message_zh"], r.text
    assert seen == {"county": ["S1", "S2"], "town_own": ["S1"], "town_other": ["S2"],
                    "village_own": ["S1"], "village_other": []}  # fmt: skip


@contextmanager
def _page_session(world: World, username: str, password: str) -> Iterator[httpx.Client]:
    with loopback_client(world.live.url, timeout=120) as c:
        r = c.post("/audit/login", data={"username": username, "password": password})
        assert r.status_code == 303, r.text
        yield c


def test_audit_page_roles(world: World) -> None:
    """The page's decision form: a town official gets 403 (and sees no form); the
    progress page's scope is that of GET /progress."""
    with _page_session(world, "town-lj", "town-lj-pass-1") as town:
        page = town.get(f"/audit/findings/{world.ids['finding']}")
        assert page.status_code == 200 and 'id="decision"' not in page.text
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)  # type: ignore[union-attr]
        r = town.post(f"/audit/findings/{world.ids['finding']}/decision",
                      data={"action": "reopen", "csrf": csrf})  # fmt: skip
        # an /audit error is a page in the page's language (Chinese by default)
        assert r.status_code == 403 and "text/html" in r.headers["content-type"], r.text
        assert re.search(r"[\u4e00-\u9fff]", r.text), r.text
        assert town.get("/audit/progress").status_code == 200
    with _page_session(world, *ADMIN) as county:
        page = county.get(f"/audit/findings/{world.ids['finding']}")
        assert 'id="decision"' in page.text
        assert county.get("/audit/progress").status_code == 200
