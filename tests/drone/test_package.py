"""Village packages from the real drone photos: names, manifest, metadata, placement."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest

from photocheck import read_metadata
from photocheck.drone import (
    MANIFEST_COLUMNS,
    MANIFEST_NAME,
    InvalidSiteName,
    PackagePhoto,
    Site,
    SiteKind,
    allocate_name,
    build_package,
    file_digests,
    nearest_site,
    photo_facts,
)

from ..conftest import data_file

MINI2 = [f"drone/openmvg_palm_desert_dji_mini2/DJI_00{n}.JPG" for n in (42, 45, 46)]
THERMAL = "drone/exifr_dji_small/dji_flir_thermal.jpg"
MAVIC = "drone/exifr_dji_small/hasselblad_L1D-20c_mavic2pro_tiny.jpg"


def _site(site_id: str, name: str, kind: SiteKind, lat: float, lon: float) -> Site:
    return Site(site_id, name, kind, county="丹凤县", town="龙驹寨街道", lat=lat, lon=lon)


def _facts(relpath: str):
    return photo_facts(read_metadata(data_file(relpath).read_bytes()))


def test_dji_mini2_metadata_reaches_the_manifest_fields() -> None:
    for relpath in MINI2:
        facts = _facts(relpath)
        assert facts.capture_time is not None and facts.capture_time.date() == dt.date(2021, 8, 20)
        assert facts.has_location
        assert 33.0 < facts.lat < 34.5 and -117.0 < facts.lon < -116.0  # Palm Desert, CA
        assert facts.relative_altitude_m is not None and 100 < facts.relative_altitude_m < 150


def test_thermal_photo_below_sea_level_keeps_its_relative_altitude() -> None:
    meta = read_metadata(data_file(THERMAL).read_bytes())
    assert meta.drone is not None
    assert meta.drone.absolute_altitude_m == pytest.approx(-8.56, abs=0.01)
    assert photo_facts(meta).relative_altitude_m == pytest.approx(62.5, abs=0.05)


def test_photos_are_placed_at_the_nearest_site_within_the_radius() -> None:
    facts = _facts(MINI2[0])
    assert facts.lat is not None and facts.lon is not None
    near = _site("S1", "幸福家园", SiteKind.RELOCATION, facts.lat + 0.002, facts.lon)  # ~220 m
    nearer = _site("S2", "福寿园", SiteKind.NURSING_HOME, facts.lat, facts.lon + 0.001)  # ~90 m
    far = _site("S3", "安居苑", SiteKind.PUBLIC_HOUSING, facts.lat + 0.05, facts.lon)  # ~5.5 km
    placed = nearest_site(facts.lat, facts.lon, [near, nearer, far])
    assert placed is not None and placed.site is nearer and 80 < placed.distance_m < 100
    assert nearest_site(facts.lat, facts.lon, [far]) is None
    assert nearest_site(facts.lat, facts.lon, [far], radius_m=10_000) is not None


def test_site_validation() -> None:
    with pytest.raises(InvalidSiteName):
        _site("S1", "../etc", SiteKind.RELOCATION, 33.6, 110.3)
    with pytest.raises(ValueError, match="0,0"):
        _site("S1", "幸福家园", SiteKind.RELOCATION, 0.0, 0.0)
    with pytest.raises(ValueError, match="both"):
        Site("S1", "幸福家园", SiteKind.RELOCATION, "丹凤县", "龙驹寨街道", lat=33.6)


def _package_photos() -> list[PackagePhoto]:
    sites = [
        _site("S1", "幸福家园", SiteKind.RELOCATION, 33.68, -116.33),
        _site("S2", "福寿园", SiteKind.NURSING_HOME, 33.60, 110.33),
    ]
    taken: set[str] = set()
    photos: list[Any] = []
    for i, relpath in enumerate([*MINI2, THERMAL, MAVIC]):
        site = sites[0] if i < 3 else sites[1]
        path = data_file(relpath)
        facts = _facts(relpath)
        day = (facts.capture_time or dt.datetime(2021, 9, 1)).date()
        count = sum(1 for p in photos if p.site is site and p.mtime.date() == day)
        name = allocate_name(
            county=site.county, town=site.town, site_name=site.name, kind=site.kind,
            day=day, taken=taken, start=count + 1,
        )  # fmt: skip
        taken.add(name)
        sha, crc = file_digests(path)
        photos.append(
            PackagePhoto(
                name=name, site=site, source=path, size=path.stat().st_size, sha256=sha,
                crc32=crc, capture_time=facts.capture_time, lat=facts.lat, lon=facts.lon,
                relative_altitude_m=facts.relative_altitude_m,
                households=("H001 张三", "=H002 李四") if i < 3 else ("H003 王五",),
                added_at=dt.datetime(2021, 9, 1, 8, 0),
            )
        )  # fmt: skip
    return photos


def test_village_package_holds_canonical_names_manifest_and_original_bytes() -> None:
    photos = _package_photos()
    layout = build_package(photos)
    data = b"".join(layout.iter_range())
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        assert names[-1] == MANIFEST_NAME
        assert sorted(names[:-1]) == names[:-1] == sorted(p.name for p in photos)
        assert "丹凤县_龙驹寨街道_幸福家园_移民搬迁点_航拍_20210820_01.jpg" in names
        assert "丹凤县_龙驹寨街道_幸福家园_移民搬迁点_航拍_20210820_03.jpg" in names
        by_name = {p.name: p for p in photos}
        for name in names[:-1]:
            source = by_name[name].source
            assert isinstance(source, Path) and zf.read(name) == source.read_bytes()
        manifest = zf.read(MANIFEST_NAME)
    assert manifest.startswith(b"\xef\xbb\xbf")  # BOM: Excel opens it as UTF-8
    rows = list(csv.DictReader(io.StringIO(manifest.decode("utf-8-sig"))))
    assert tuple(rows[0]) == MANIFEST_COLUMNS
    assert len(rows) == len(photos)
    first = next(r for r in rows if r["文件名 name"].endswith("20210820_01.jpg"))
    assert first["站点 site"] == "幸福家园" and first["类型 kind"].startswith("移民搬迁点")
    assert first["SHA-256"] == by_name[first["文件名 name"]].sha256
    assert first["关联户 households"] == "H001 张三; =H002 李四"  # '=' mid-cell is harmless
    assert 100 < float(first["相对高度(米) relative_altitude_m"]) < 150
    assert first["拍摄时间 capture_time"].startswith("2021-08-20 ")


def test_manifest_cells_cannot_run_as_formulas() -> None:
    photos = _package_photos()
    photos[0] = PackagePhoto(**{**photos[0].__dict__, "households": ("=cmd|'/c calc'!A1",)})
    data = b"".join(build_package(photos).iter_range())
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        text = zf.read(MANIFEST_NAME).decode("utf-8-sig")
    assert "'=cmd|" in text


def test_package_bytes_and_etag_do_not_depend_on_order() -> None:
    photos = _package_photos()
    a, b = build_package(photos), build_package(list(reversed(photos)))
    assert a.etag == b.etag and a.size == b.size
    assert b"".join(a.iter_range()) == b"".join(b.iter_range())
