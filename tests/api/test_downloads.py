"""The ASCII ``filename`` fallback of downloads is readable, never ``____.zip``."""

from __future__ import annotations

import pytest

from api.downloads import ascii_fallback, content_disposition


@pytest.mark.parametrize(
    ("name", "readable", "expected"),
    [
        (
            "丹凤县_龙驹寨镇_东村_航拍照片.zip",
            "village-7-drone-photos.zip",
            "village-7-drone-photos.zip",
        ),
        ("丹凤县_幸福家园_20240801_01.jpg", None, "20240801_01.jpg"),
        ("航拍照片.zip", None, "download.zip"),
        ("report.html", None, "report.html"),
        ("a;b%c.csv", None, "a-b-c.csv"),
    ],
)
def test_ascii_fallback(name: str, readable: str | None, expected: str) -> None:
    assert ascii_fallback(name, readable) == expected
    header = content_disposition(name, ascii_name=readable)
    assert f'filename="{expected}"' in header and header.isascii()
