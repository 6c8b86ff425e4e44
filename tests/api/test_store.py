"""Focused tests of photocheck.store: import validation, blobs, reconcile, duplicate index."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from openpyxl import Workbook
from openpyxl.worksheet.worksheet import Worksheet

from api.migrate import upgrade
from photocheck.store import (
    Database,
    DupEntry,
    DuplicateIndex,
    ImportRejected,
    LocalBlobStore,
    SizeLimitExceeded,
    parse_household_file,
    reconcile,
)
from photocheck.store.models import Category

HEADER = "household_id,head_name,town,village,category,site_id,lat,lon\n"


def test_import_accepts_bom_chinese_categories_and_optional_columns() -> None:
    text = "\ufeffhousehold_id,head_name,town,village,category\nH1,张三,镇,村,保障安全\n"
    rows = parse_household_file(text.encode())
    assert rows[0].category is Category.SECURED and rows[0].lat is None
    assert rows[0].row == 2


def test_import_reports_every_bad_row_and_imports_nothing() -> None:
    bad = HEADER + (
        "H1,张三,镇,村,appraised,,33.7,110.3\n"
        "H2,,镇,村,appraised,,,\n"  # no head_name
        "H3,王五,镇,村,dangerous,,,\n"  # unknown category
        "H1,李四,镇,村,renovated,,,\n"  # duplicate id
        "H4,赵六,镇,村,renovated,,95,110\n"  # lat out of range
        "H5,孙七,镇,村,renovated,,33.7,\n"  # lat without lon
    )
    with pytest.raises(ImportRejected) as info:
        parse_household_file(bad.encode())
    found = {(e.row, e.column) for e in info.value.errors}
    assert found == {(3, "head_name"), (4, "category"), (5, "household_id"), (6, "lat"), (7, "lon")}


def test_import_rejects_missing_columns_and_non_utf8() -> None:
    with pytest.raises(ImportRejected, match="problem"):
        parse_household_file(b"household_id,head_name\nH1,x\n")
    with pytest.raises(ImportRejected) as info:
        parse_household_file((HEADER + "H1,张三,镇,村,appraised,,,\n").encode("gbk"))
    assert "UTF-8" in info.value.errors[0].message


def test_import_xlsx() -> None:
    wb = Workbook()
    ws = wb.active
    assert isinstance(ws, Worksheet)
    ws.append(HEADER.strip().split(","))
    ws.append(["H1", "张三", "镇", "村", "改造安全", "S1", 33.7, 110.3])
    buf = io.BytesIO()
    wb.save(buf)
    rows = parse_household_file(buf.getvalue(), "list.xlsx")
    assert rows[0].category is Category.RENOVATED and rows[0].site_id == "S1"
    assert rows[0].lat == pytest.approx(33.7)


def test_blob_store_is_content_addressed_and_never_overwrites(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    data = b"\xff\xd8\xff" + bytes(1000)
    rel = store.put_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    assert rel == f"{sha[:2]}/{sha[2:4]}/{sha}"
    before = store.path(sha).stat().st_mtime_ns
    assert store.put_bytes(data) == rel
    assert store.path(sha).stat().st_mtime_ns == before
    assert list(store.tmp.iterdir()) == []
    writer = store.open_writer(limit=10)
    with pytest.raises(SizeLimitExceeded):
        writer.write(bytes(11))
    writer.abort()
    assert list(store.tmp.iterdir()) == []


def test_reconcile_cleans_temp_files_and_quarantines_orphans(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    upgrade(db.engine)
    store = LocalBlobStore(tmp_path / "blobs", orphan_dir=tmp_path / "orphans")
    (store.tmp / "upload-crashed").write_bytes(b"half an upload")
    orphan = store.put_bytes(b"committed blob whose row never came")
    # another process's upload in flight: recent files are left alone
    assert reconcile(db, store).clean
    report = reconcile(db, store, grace_s=0)
    assert report.temp_removed == 1
    assert report.orphans_moved == [Path(orphan).name]
    assert (tmp_path / "orphans" / Path(orphan).name).exists()
    assert not (store.root / orphan).exists()
    assert reconcile(db, store, grace_s=0).clean
    db.dispose()


def _entry(i: int, pdq: bytes, household: int | None = None) -> DupEntry:
    return DupEntry(i, household or i, 1, None, pdq, None, None, None, f"{i:064x}", None)


def test_duplicate_index_matches_brute_force() -> None:
    rng = np.random.default_rng(7)
    hashes = [rng.bytes(32) for _ in range(300)]
    index = DuplicateIndex()
    index.build(_entry(i, h) for i, h in enumerate(hashes))
    query = bytearray(hashes[42])
    for bit in range(0, 200, 10):  # 20 bits flipped
        query[bit // 8] ^= 1 << (bit % 8)
    hits = index.same_photo(pdq_variants=[bytes(query)], max_distance=31)
    brute = [
        i
        for i, h in enumerate(hashes)
        if (int.from_bytes(h, "big") ^ int.from_bytes(bytes(query), "big")).bit_count() <= 31
    ]
    assert [h.photo_id for h in hits] == brute == [42]
    assert hits[0].distance == 20
