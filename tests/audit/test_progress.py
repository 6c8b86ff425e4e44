"""Progress counts, ranking, change since yesterday and the bulletin exports."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import openpyxl
import pytest

from photocheck.audit import (
    CHINA_TZ,
    HouseholdRecord,
    VillageRecord,
    compute_progress,
    progress_csv,
    progress_xlsx,
)
from photocheck.audit.synthetic import synthetic_county

NOW = dt.datetime(2020, 8, 5, 10, 0, tzinfo=CHINA_TZ)
YESTERDAY = dt.datetime(2020, 8, 4, 15, 0, tzinfo=CHINA_TZ)  # before 00:00 today
TODAY = dt.datetime(2020, 8, 5, 8, 30, tzinfo=CHINA_TZ)
LATE = dt.datetime(2020, 8, 4, 23, 59, tzinfo=CHINA_TZ)  # 15:59 UTC: still yesterday


def hh(hid: str, vid: str, *uploads: tuple[dt.datetime, str]) -> HouseholdRecord:
    return HouseholdRecord(hid, vid, tuple((t.astimezone(dt.UTC), v) for t, v in uploads))


@pytest.fixture
def table():
    villages = [
        VillageRecord("A", "王家沟村", "城关镇"),
        VillageRecord("B", "李家坪村", "城关镇"),
        VillageRecord("C", "张家河村", "商镇"),
        VillageRecord("D", "空村", "商镇"),  # no households registered yet
    ]
    households = [
        hh("a1", "A", (YESTERDAY, "accept")),
        hh("a2", "A", (YESTERDAY, "reject"), (TODAY, "review")),  # retaken today
        hh("a3", "A", (TODAY, "reject")),
        hh("a4", "A"),
        hh("b1", "B", (LATE, "accept")),
        hh("b2", "B", (TODAY, "accept")),
        hh("c1", "C", (TODAY, "accept")),
        hh("c2", "C", (TODAY, "accept")),
    ]
    return compute_progress(households, villages, NOW)


def test_counts_and_change(table) -> None:
    rows = {r.village_id: r for r in table.villages}
    a = rows["A"]
    assert (a.total, a.accepted, a.review, a.retake, a.no_photo) == (4, 1, 1, 1, 1)
    assert a.pct_done == 50.0 and a.done_yesterday == 1 and a.change_pct == 25.0
    assert rows["B"].done_yesterday == 1  # 23:59 China time is yesterday
    assert rows["C"].pct_done == 100.0 and rows["C"].change_pct == 100.0
    assert rows["D"].total == 0 and rows["D"].pct_done == 0.0
    t = table.total
    assert (t.total, t.accepted, t.review, t.retake, t.no_photo) == (8, 5, 1, 1, 1)


def test_ranking_with_ties(table) -> None:
    ranks = {r.village_id: (r.rank, r.rank_yesterday) for r in table.villages}
    assert ranks["B"] == (1, 1) and ranks["C"] == (1, 3)  # tie: both 100 %
    assert ranks["A"] == (3, 2) and ranks["D"] == (4, 3)
    towns = [(r.town, r.rank) for r in table.towns]
    assert towns == [("商镇", 1), ("城关镇", 2)]  # 2/2 = 100 % vs 4/6 = 67 %


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        compute_progress([], [], dt.datetime(2020, 8, 5))


def test_csv_has_bom_and_chinese_headers(table) -> None:
    raw = progress_csv(table)
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0][:3] == ["排名", "乡镇", "村（社区）"]
    assert rows[-1][1] == "合计" and rows[-1][3] == "8"
    towns = list(csv.reader(io.StringIO(progress_csv(table, level="town").decode("utf-8-sig"))))
    assert towns[0][1] == "乡镇" and len(towns) == 1 + 2 + 1


def test_xlsx_totals_match_the_records() -> None:
    county = synthetic_county(3000, seed=5)
    now = dt.datetime(2020, 8, 4, 12, 0, tzinfo=CHINA_TZ)  # mid-campaign: work left
    table = compute_progress(county.households, county.villages, now)
    wb = openpyxl.load_workbook(io.BytesIO(progress_xlsx(table)))
    assert wb.sheetnames == ["乡镇排名", "村排名"]
    ws = wb["村排名"]
    header = [c.value for c in ws[2]]
    body: list[list[Any]] = [[c.value for c in row] for row in ws.iter_rows(min_row=3)]
    rows, total = body[:-1], body[-1]
    col = {name: header.index(name) for name in header}
    assert len(rows) == len(county.villages)
    assert sum(r[col["总户数"]] for r in rows) == total[col["总户数"]] == len(county.households)
    for name in ("已通过", "待审核", "待重拍", "未上传"):
        assert sum(r[col[name]] for r in rows) == total[col[name]]
    assert 0 < total[col["未上传"]] < len(county.households)
    town_total = [c.value for c in wb["乡镇排名"][wb["乡镇排名"].max_row]]
    assert town_total[1] == "合计" and town_total[2] == len(county.households)
