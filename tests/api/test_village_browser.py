"""The village page in a real headless Chromium: a verifier logs in, drops a folder of
real photos (one name ambiguous, one unknown), assigns them, uploads, and sees the
verdicts and the retake list change; the same folder again stores nothing twice, and
practice mode stores nothing at all."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from photocheck.store import Photo
from tests.conftest import data_file

from .conftest import ADMIN, LiveServer, activate, login, loopback_client
from .test_audit_browser import browser  # noqa: F401  (the Chromium fixture)
from .test_session import BLURRED, GOOD, GOOD_2, upload

pytestmark = pytest.mark.browser

HOUSEHOLDS = """household_id,head_name,town,village,category,site_id,lat,lon
V1,张三,龙驹寨镇,东村,鉴定安全,,33.70,110.30
V2,李四,龙驹寨镇,东村,改造安全,,33.70,110.30
V3,王五,龙驹寨镇,东村,鉴定安全,,33.70,110.30
V4,王五,龙驹寨镇,东村,鉴定安全,,33.70,110.30
V5,赵六,龙驹寨镇,东村,鉴定安全,,33.70,110.30
"""
# file name in the verifier's folder -> photo; 王五 is two households, 老屋 none
FOLDER = {
    "V1_张三.jpg": GOOD,
    "李四.jpg": BLURRED,
    "王五.jpg": GOOD_2,
    "老屋.jpg": "buildings/camera_corpus/canon_s30_house_street.jpg",
    "赵六 重拍.jpg": "buildings/camera_corpus/kyocera_fcs3_modern_building.jpg",
}


def _village_account(client: httpx.Client) -> tuple[str, str]:
    """The village's account and its initial password, as the county hands them out."""
    admin = login(client, *ADMIN)
    r = client.post("/households/import", content=HOUSEHOLDS.encode(),
                    headers={**admin, "content-type": "text/csv"})  # fmt: skip
    assert r.status_code == 200, r.text
    (account,) = r.json()["accounts"]
    return account["username"], account["password"]


def _village(client: httpx.Client) -> tuple[str, str, dict[str, str]]:
    username, initial = _village_account(client)
    password = "east-village-pass-1"
    return username, password, activate(client, username, initial, password)


def _retakes(page) -> list[str]:
    items = page.locator("#retake-list > li")
    return [items.nth(i).get_attribute("data-household") for i in range(items.count())]


def _photos(server: LiveServer) -> int:
    with server.app_state.db.session() as session:
        return session.scalar(select(func.count()).select_from(Photo)) or 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_folder_upload_in_the_browser(
    server: LiveServer,
    client: httpx.Client,
    browser,  # noqa: F811
    tmp_path: Path,
) -> None:
    started = time.perf_counter()
    username, initial = _village_account(client)
    password = "east-village-pass-1"
    folder = tmp_path / "东村照片"
    folder.mkdir()
    for name, rel in FOLDER.items():
        shutil.copy(data_file(rel), folder / name)

    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    page.goto(server.url + "/village")
    assert "/village/login" in page.url
    page.fill("#username", username)
    page.fill("#password", initial)
    page.click("#login-button")  # first login: the page asks for a new password
    page.fill("#old-password", initial)
    page.fill("#new-password", password)
    page.fill("#new-password-2", password + "x")
    page.click("#password-button")
    assert page.locator("#password-error").inner_text() == "两次输入的新密码不一致"
    page.fill("#old-password", initial)
    page.fill("#new-password", password)
    page.fill("#new-password-2", password)
    page.click("#password-button")
    page.wait_for_url(server.url + "/village")
    headers = login(client, username, password)  # the app uploads a blurred photo for V5
    assert upload(client, headers, "V5", BLURRED).json()["verdict"] == "reject"
    page.reload()
    assert _retakes(page) == ["V5"]
    assert page.locator("#households tbody tr").count() == 5

    # the folder: matched, ambiguous and unknown names; nothing is sent yet
    page.set_input_files("#folder-input", str(folder))
    rows = page.locator("#files tr.file")
    rows.first.wait_for()
    assert rows.count() == 5
    status = {r.locator("td.name").inner_text(): r.get_attribute("data-status")
              for r in rows.all()}  # fmt: skip
    assert status == {
        "东村照片/V1_张三.jpg": "matched",
        "东村照片/李四.jpg": "matched",
        "东村照片/王五.jpg": "ambiguous",
        "东村照片/老屋.jpg": "unknown",
        "东村照片/赵六 重拍.jpg": "matched",
    }
    assert page.locator("#confirm").is_disabled()  # two files still need a household
    assert _photos(server) == 1
    ambiguous = rows.filter(has_text="王五.jpg").locator("select")
    options = ambiguous.locator("option").all_inner_texts()
    assert options[1:3] == ["V3 王五", "V4 王五"]  # the candidates first
    ambiguous.select_option("V3")
    rows.filter(has_text="老屋.jpg").locator("select").select_option("V4")
    page.screenshot(path=str(tmp_path / "village-matching.png"), full_page=True)
    page.click("#confirm")
    page.wait_for_selector("body[data-uploads=done]", timeout=120_000)

    verdicts = {
        r.locator("td.name").inner_text().split("/")[-1]: r.locator("[data-verdict]").get_attribute(
            "data-verdict"
        )
        for r in rows.all()
    }
    assert verdicts["李四.jpg"] == "reject"
    assert all(v in ("accept", "review") for k, v in verdicts.items() if k != "李四.jpg"), verdicts
    blurred = rows.filter(has_text="李四.jpg")
    assert blurred.locator("li[data-code=BLURRY]").count() == 1
    assert "重拍" in blurred.locator(".next").inner_text()
    # the retake list followed: 李四 now, 赵六's new photo cleared it
    assert _retakes(page) == ["V2"]
    assert page.locator("#retake-count").inner_text() == "1"
    page.screenshot(path=str(tmp_path / "village-verdicts.png"), full_page=True)
    assert _photos(server) == 6

    # a reload and the same folder again: the same keys, nothing stored twice
    page.reload()
    assert page.locator("#households tr[data-household=V2] .state").inner_text() == "需重拍"
    page.set_input_files("#folder-input", str(folder))
    page.locator("#files tr.file").first.wait_for()
    page.locator("#files tr.file").filter(has_text="王五.jpg").locator("select").select_option("V3")
    page.locator("#files tr.file").filter(has_text="老屋.jpg").locator("select").select_option("V4")
    page.click("#confirm")
    page.wait_for_selector("body[data-uploads=done]", timeout=120_000)
    assert _photos(server) == 6

    # practice (模拟录入): every check runs, nothing is stored
    page.reload()
    page.check("#practice")
    page.set_input_files("#households tr[data-household=V2] input.one-file",
                         str(data_file(GOOD_2)))  # fmt: skip
    page.wait_for_selector("body[data-uploads=done]", timeout=120_000)
    assert "模拟" in page.locator("#files [data-verdict]").inner_text()
    assert _photos(server) == 6

    page.goto(server.url + "/village?lang=en")
    assert page.locator("#households tr[data-household=V2] .state").inner_text() == "Retake needed"
    seconds = time.perf_counter() - started
    print(f"\nvillage page test: {seconds:.1f} s")
    if os.environ.get("PHOTOCHECK_SCREENSHOTS"):
        out = Path(os.environ["PHOTOCHECK_SCREENSHOTS"])
        out.mkdir(parents=True, exist_ok=True)
        for name in ("village-matching.png", "village-verdicts.png"):
            shutil.copy(tmp_path / name, out / name)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_cookie_works_for_the_api_only_with_its_csrf_header(
    server: LiveServer, client: httpx.Client
) -> None:
    username, password, _ = _village(client)
    with loopback_client(server.url, timeout=60) as web:
        county = web.post("/village/login", data={"username": ADMIN[0], "password": ADMIN[1]})
        assert county.status_code == 200 and "/audit" in county.text  # told where to go
        assert "photocheck_token" not in web.cookies
        r = web.post("/village/login", data={"username": username, "password": password})
        assert r.status_code == 303
        body = {"filenames": ["张三.jpg"]}
        assert web.post("/api/v1/households/match-files", json=body).status_code == 401
        page = web.get("/village").text
        csrf = page.split('name="csrf" content="')[1].split('"')[0]
        r = web.post("/api/v1/households/match-files", json=body,
                     headers={"X-CSRF-Token": csrf})  # fmt: skip
        assert r.status_code == 200, r.text
        assert r.json()["files"][0]["household_id"] == "V1"
        assert web.post("/village/logout").status_code == 403  # no CSRF token: not logged out
        wrong = web.post("/api/v1/households/match-files", json=body,
                         headers={"X-CSRF-Token": "0" * 32})  # fmt: skip
        assert wrong.status_code == 401
        r = web.post("/village/logout", data={"csrf": csrf})
        assert r.status_code == 303 and "photocheck_token" not in web.cookies
