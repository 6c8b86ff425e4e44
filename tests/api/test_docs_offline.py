"""/docs and /redoc work on a county network without internet: every script,
stylesheet and icon they name is served by photocheck itself."""

from __future__ import annotations

import re

import pytest

from .conftest import LiveServer, loopback_client


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_reference_only_local_assets_that_load(module_server: LiveServer, page: str) -> None:
    with loopback_client(module_server.url, timeout=60) as c:
        r = c.get(page)
        assert r.status_code == 200 and "text/html" in r.headers["content-type"]
        refs = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", r.text)
        assets = [u for u in refs if not u.startswith("/openapi.json")]
        assert assets, r.text
        assert [u for u in refs if "://" in u or u.startswith("//")] == []
        for url in assets:
            got = c.get(url)
            assert got.status_code == 200, url
            assert len(got.content) > 1000, url  # the real bundle, not an error page
        assert c.get("/openapi.json").status_code == 200
