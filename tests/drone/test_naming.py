"""Canonical names: the issue's format, safety on every platform, 120 bytes, uniqueness."""

from __future__ import annotations

import datetime as dt
import unicodedata
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from photocheck.drone import (
    MAX_NAME_BYTES,
    InvalidSiteName,
    SiteKind,
    allocate_name,
    canonical_name,
    is_safe_filename,
    validate_site_name,
)

DAY = dt.date(2021, 8, 20)


def _name(site: str = "幸福家园", **kw: object) -> str:
    args: dict = dict(county="丹凤县", town="龙驹寨街道", site_name=site, kind=SiteKind.RELOCATION)
    args.update(day=DAY, seq=1)
    args.update(kw)
    return canonical_name(**args)


def test_format_matches_the_issue() -> None:
    assert _name() == "丹凤县_龙驹寨街道_幸福家园_移民搬迁点_航拍_20210820_01.jpg"
    assert _name(kind=SiteKind.NURSING_HOME, seq=12).endswith("_敬老院_航拍_20210820_12.jpg")
    assert "_保障性住房_航拍_" in _name(kind=SiteKind.PUBLIC_HOUSING)
    assert _name(seq=100).endswith("_100.jpg")


def test_kind_labels_and_parse() -> None:
    assert SiteKind.NURSING_HOME.label_zh == "敬老院"
    assert SiteKind.PUBLIC_HOUSING.label_en == "public housing"
    assert SiteKind.parse("移民搬迁点") is SiteKind.RELOCATION
    assert SiteKind.parse("Nursing Home") is SiteKind.NURSING_HOME
    assert SiteKind.parse("public_housing") is SiteKind.PUBLIC_HOUSING
    with pytest.raises(ValueError, match="unknown site kind"):
        SiteKind.parse("school")


def test_long_site_name_is_shortened_on_a_character_boundary() -> None:
    long_site = "龙驹寨街道办事处庾家河移民搬迁安置点二期东区幸福家园小区"  # 28 chars, 84 bytes
    name = _name(long_site, seq=7)
    assert len(name.encode()) <= MAX_NAME_BYTES
    assert name.endswith("_移民搬迁点_航拍_20210820_07.jpg")
    site_part = name.split("_")[2]
    assert long_site.startswith(site_part) and 0 < len(site_part) < len(long_site)
    assert is_safe_filename(name)


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("../x", "contains"),
        ("a/b", "contains"),
        ("C:\\", "contains"),
        ("..", "must not start"),
        (".hidden", "must not start"),
        ("-rf", "must not start"),
        ("小区?", "contains"),
        ('a"b', "contains"),
        ("a|b", "contains"),
        ("a\x00b", "control or invisible"),
        ("a\nb", "control or invisible"),
        ("evil\u202egpj.exe", "control or invisible"),  # right-to-left override
        ("zero\u200bwidth", "control or invisible"),
        ("CON", "reserved device"),
        ("nul.txt", "reserved device"),
        ("COM1", "reserved device"),
        ("", "empty"),
        ("   ", "empty"),
        ("幸" * 51, "characters long"),
    ],
)
def test_bad_site_names_are_refused_with_a_clear_error(bad: str, why: str) -> None:
    with pytest.raises(InvalidSiteName, match=why) as info:
        validate_site_name(bad)
    assert isinstance(info.value, ValueError)
    with pytest.raises(InvalidSiteName):
        _name(bad)


def test_names_are_normalised_not_mangled() -> None:
    decomposed = unicodedata.normalize("NFD", "Café 小区")
    assert validate_site_name(f"  {decomposed} ") == "Café 小区"
    name = _name(decomposed)
    assert "Café-小区" in name  # blanks become a dash for chat apps
    assert name == unicodedata.normalize("NFC", name)
    assert validate_site_name("COM10") == "COM10"  # only the exact device names are reserved


def test_town_and_county_are_validated_too() -> None:
    with pytest.raises(InvalidSiteName, match="town name"):
        _name(town="a/b")
    with pytest.raises(InvalidSiteName, match="county name"):
        _name(county="..\\x")


def test_bad_sequence_or_extension() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        _name(seq=0)
    with pytest.raises(ValueError, match="extension"):
        _name(ext="/../.jpg")


def test_allocate_counts_per_site_and_day_and_skips_taken_names() -> None:
    common: dict[str, Any] = dict(
        county="丹凤县", town="龙驹寨街道", kind=SiteKind.RELOCATION, day=DAY
    )
    taken: set[str] = set()
    a = [allocate_name(site_name="幸福家园", taken=taken, start=i + 1, **common) for i in range(2)]
    taken.update(a)
    assert [n[-6:-4] for n in a] == ["01", "02"]
    # Two long names that shorten to the same prefix still get distinct names.
    long_a, long_b = "庾家河" * 16 + "东", "庾家河" * 16 + "西"
    first = allocate_name(site_name=long_a, taken=taken, **common)
    taken.add(first)
    second = allocate_name(site_name=long_b, taken=taken, **common)
    assert first != second and second.endswith("_02.jpg")
    # Another day starts again at 01.
    other_day = {**common, "day": dt.date(2021, 8, 21)}
    assert allocate_name(site_name="幸福家园", taken=taken, **other_day).endswith("_01.jpg")


_site_chars = st.characters(
    codec="utf-8", categories=("L", "M", "N", "P", "S", "Zs"), exclude_characters='<>:"/\\|?*'
)


@settings(max_examples=300, deadline=None)
@given(
    county=st.text(_site_chars, min_size=1, max_size=50),
    town=st.text(_site_chars, min_size=1, max_size=50),
    site=st.text(_site_chars, min_size=1, max_size=50),
    kind=st.sampled_from(SiteKind),
    seq=st.integers(1, 999),
)
def test_any_accepted_name_is_safe_and_short(
    county: str, town: str, site: str, kind: SiteKind, seq: int
) -> None:
    try:
        name = canonical_name(county=county, town=town, site_name=site, kind=kind, day=DAY, seq=seq)
    except InvalidSiteName:
        return  # refused with a clear error is an allowed outcome; a bad name is not
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES
    assert is_safe_filename(name)
    assert not set(name) & set('<>:"/\\|?*')
    assert name.endswith(f"_{kind.label_zh}_航拍_20210820_{seq:02d}.jpg")


@settings(max_examples=50, deadline=None)
@given(
    sites=st.lists(st.text(_site_chars, min_size=1, max_size=50), min_size=1, max_size=8),
    per_site=st.integers(1, 4),
)
def test_allocated_names_never_collide(sites: list[str], per_site: int) -> None:
    taken: set[str] = set()
    county, town = "商洛市丹凤县" * 3, "龙驹寨街道办事处" * 2  # long: forces shortening
    for site in sites:
        try:
            validate_site_name(site)
        except InvalidSiteName:
            continue
        for i in range(per_site):
            name = allocate_name(
                county=county, town=town, site_name=site, kind=SiteKind.RELOCATION,
                day=DAY, taken=taken, start=i + 1,
            )  # fmt: skip
            assert name not in taken
            assert is_safe_filename(name)
            taken.add(name)
