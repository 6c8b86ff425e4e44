"""``photocheck drone add`` and ``drone package`` on a real data folder and database."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from api.accounts import add_user
from api.migrate import upgrade
from api.settings import Settings
from photocheck.drone import SiteKind
from photocheck.store import County, Database, Household, Role, Town, Village
from photocheck.store.sites import create_site

from ..conftest import DATA

MINI2 = sorted((DATA / "drone" / "openmvg_palm_desert_dji_mini2").glob("*.JPG"))
TINY = DATA / "drone" / "exifr_dji_small" / "hasselblad_L1D-20c_mavic2pro_tiny.jpg"


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        capture_output=True, text=True, env=env, check=False, timeout=300,
    )  # fmt: skip


def test_drone_add_then_package(tmp_path: Path) -> None:
    settings = Settings(DATA_DIR=tmp_path / "data")
    add_user(settings, "admin", "county-secret-1", role=Role.COUNTY, county="丹凤县")
    db = Database(settings.database_url)
    upgrade(db.engine)
    with db.write() as session:
        county = session.query(County).one()
        create_site(session, county, site_code="S1", name="幸福家园", kind=SiteKind.RELOCATION,
                    town="龙驹寨镇", lat=33.6275, lon=-116.4052)  # fmt: skip
        town = session.query(Town).one()
        village = Village(town_id=town.id, name="东村")
        session.add(village)
        session.flush()
        household = Household(
            county_id=county.id, household_code="R1", head_name="张三",
            village_id=village.id, category="secured", site_code="S1",
        )  # fmt: skip
        session.add(household)
    db.dispose()
    folder = tmp_path / "flight"
    folder.mkdir()
    for p in [*MINI2, TINY]:
        shutil.copy(p, folder / p.name)
    env = {**os.environ, "PHOTOCHECK_DATA_DIR": str(settings.DATA_DIR)}

    proc = _cli(env, "drone", "add", str(folder))
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    stored = [x for x in lines if x.get("stored")]
    assert sorted(x["name"] for x in stored) == [
        f"丹凤县_龙驹寨镇_幸福家园_移民搬迁点_航拍_20210820_{n:02d}.jpg" for n in (1, 2, 3)
    ]
    assert all(x["distance_m"] < 1000 for x in stored)
    unplaced = [x for x in lines if x.get("site_id") is None]
    assert [Path(x["file"]).name for x in unplaced] == [TINY.name]  # in the Alps, no site
    assert "1 not placed" in proc.stderr and TINY.name in proc.stderr

    out = tmp_path / "packages"
    proc = _cli(env, "drone", "package", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    (package,) = out.glob("*.zip")
    assert package.name == "丹凤县_龙驹寨镇_东村_航拍照片.zip"
    with zipfile.ZipFile(package) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        assert len(names) == 4 and names[-1].endswith(".csv")
        by_size = {p.stat().st_size: p for p in MINI2}
        for name in names[:3]:
            data = zf.read(name)
            assert data == by_size[len(data)].read_bytes()
