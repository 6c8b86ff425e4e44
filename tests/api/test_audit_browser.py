"""The audit page in a real headless Chromium: log in, open a duplicate finding, see
both photos load, dismiss it with a note, see the status change."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from photocheck.store.models import PhotoMatch

from .conftest import ADMIN, LiveServer
from .test_audit import duplicate_campaign, refresh
from .test_session import GOOD, SAME_SCENE, setup_campaign, upload

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One headless Chromium per module; each test opens its own page (``new_page``:
    a fresh context, no cookies or storage shared with another test)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            raise
        pytest.skip("playwright is not installed")
    if not shutil.which(CHROMIUM):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} missing in CI")
        pytest.skip(f"{CHROMIUM} missing (apt-get install -y chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_dismiss_a_duplicate_in_the_browser(
    server: LiveServer, client: httpx.Client, browser, tmp_path: Path
) -> None:
    admin, _ = duplicate_campaign(client)
    refresh(client, admin)  # the page shows what the worker computed; wait for it
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(server.url + "/audit")
    assert "/audit/login" in page.url  # not logged in: the form
    page.fill("#username", ADMIN[0])
    page.fill("#password", "wrong")
    page.click("#login-button")
    assert page.locator("#login-error").is_visible()
    page.fill("#username", ADMIN[0])
    page.fill("#password", ADMIN[1])
    page.click("#login-button")
    page.wait_for_url(server.url + "/audit")
    rows = page.locator("tr.finding[data-kind=duplicate_cluster]")
    assert rows.count() == 2
    row = rows.filter(has_text="A1").first
    assert "待处理" in row.inner_text()
    page.screenshot(path=str(tmp_path / "findings.png"))
    row.locator("a").click()
    page.wait_for_load_state("networkidle")
    images = page.locator("img.finding-photo")
    assert images.count() == 2
    widths = images.evaluate_all("els => els.map(e => e.complete ? e.naturalWidth : 0)")
    assert all(w > 0 for w in widths), widths
    assert "A1" in page.content() and "B1" in page.content()
    page.fill("#note", "两户共用同一张照片，已核实为录入错误，通知重拍")
    page.click("#dismiss")
    page.wait_for_load_state("networkidle")
    assert page.locator("#status").inner_text() == "已排除"
    assert "两户共用同一张照片" in page.locator("#history").inner_text()
    page.screenshot(path=str(tmp_path / "finding.png"), full_page=True)
    page.goto(server.url + "/audit?status=dismissed&lang=en")
    assert page.locator("tr.finding").count() == 1
    assert "Dismissed" in page.locator("tr.finding").inner_text()
    page.goto(server.url + "/audit/progress?lang=zh")
    assert page.locator("svg.bars rect").count() >= 2  # one stacked bar per town
    assert "龙驹寨镇" in page.locator("table").first.inner_text()
    with page.expect_download() as download:
        page.click("#xlsx")
    assert download.value.suggested_filename.endswith(".xlsx")
    page.screenshot(path=str(tmp_path / "progress.png"), full_page=True)
    # the look-back re-check (issue 12): start it, the progress bar fills (polled while
    # it runs), then confirm; under the same policy no household's verdict changes
    page.click("#nav-recheck")
    page.click("#start-recheck")
    page.wait_for_selector('#recheck-run[data-state="done"]', timeout=120_000)
    bar = page.locator("#recheck-progress")
    assert bar.get_attribute("value") == bar.get_attribute("max") != "0"
    assert page.locator("#no-changes").is_visible()
    page.click("#confirm-run")
    page.wait_for_selector('#recheck-run[data-state="confirmed"]')
    assert "admin" in page.locator("#confirmed-by").inner_text()
    page.screenshot(path=str(tmp_path / "recheck.png"), full_page=True)
    page.click("#logout")  # a form with its CSRF token (issue 9 item 9)
    page.wait_for_url(server.url + "/audit/login")
    page.goto(server.url + "/audit")
    assert "/audit/login" in page.url
    if os.environ.get("PHOTOCHECK_SCREENSHOTS"):
        out = Path(os.environ["PHOTOCHECK_SCREENSHOTS"])
        out.mkdir(parents=True, exist_ok=True)
        for name in ("findings.png", "finding.png", "progress.png", "recheck.png"):
            shutil.copy(tmp_path / name, out / name)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_same_scene_finding_shows_the_match_picture(
    server: LiveServer, client: httpx.Client, browser, tmp_path: Path
) -> None:
    """A re-shot house for another household: the finding shows both photos joined by
    the verified points, with the count and the threshold in words (zh, then en)."""
    admin, v = setup_campaign(client)
    assert upload(client, v["东村"], "A1", GOOD).status_code == 201
    assert upload(client, v["南村"], "C3", SAME_SCENE).status_code == 201  # the church again
    assert server.app_state.intake.drain(timeout=120)
    refresh(client, admin)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(server.url + "/audit/login")
    page.fill("#username", ADMIN[0])
    page.fill("#password", ADMIN[1])
    page.click("#login-button")
    page.wait_for_url(server.url + "/audit")
    row = page.locator("tr.finding[data-kind=duplicate_cluster]").filter(has_text="C3").first
    row.locator("a").click()
    page.wait_for_load_state("networkidle")
    picture = page.locator("img.match-picture")
    assert picture.count() == 1
    width = picture.evaluate("e => e.complete ? e.naturalWidth : 0")
    assert width > 0
    caption = page.locator("figure.match figcaption").inner_text()
    # the threshold named is the one the deciding stage used, from the policy
    sim = server.app_state.policy.similarity
    with server.app_state.db.session() as session:
        match = session.scalars(select(PhotoMatch).where(PhotoMatch.relation == "same_scene")).one()
        minimum = match.evidence["thresholds"]["scene_min_inliers"]
    assert minimum in {sim.xfeat_nn_same_inliers, sim.xfeat_min_inliers, sim.scene_min_inliers}
    assert "C3" in caption and "A1" in caption and f"至少 {minimum} 个" in caption, caption
    page.screenshot(path=str(tmp_path / "match.png"), full_page=True)
    page.goto(page.url + "?lang=en")
    caption_en = page.locator("figure.match figcaption").inner_text()
    assert f"at least {minimum} such points" in caption_en, caption_en
    if os.environ.get("PHOTOCHECK_SCREENSHOTS"):
        out = Path(os.environ["PHOTOCHECK_SCREENSHOTS"])
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / "match.png", out / "match.png")
