"""Daily progress of towns and villages, their ranking, and the bulletin exports.

A household's state is the verdict of its latest upload: accepted, in review (kept,
the county decides), rejected and awaiting a retake, or no photo yet. "Done" means a
photo is on file that needs no retake (accepted or in review): that is the village's
share of the work; review is the county's. Yesterday's figures are the same rule
applied to the uploads made before 00:00 today, China time, so no daily snapshot has
to be stored.
"""

from __future__ import annotations

import csv
import datetime as dt
import enum
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from .records import CHINA_TZ, HouseholdRecord, VillageRecord

__all__ = [
    "HouseholdState",
    "ProgressRow",
    "ProgressTable",
    "compute_progress",
    "household_state",
    "progress_csv",
    "progress_xlsx",
]


class HouseholdState(enum.StrEnum):
    ACCEPTED = "accepted"
    REVIEW = "review"
    RETAKE = "retake"
    NO_PHOTO = "no_photo"


_BY_VERDICT = {
    "accept": HouseholdState.ACCEPTED,
    "review": HouseholdState.REVIEW,
    "reject": HouseholdState.RETAKE,
}


def household_state(h: HouseholdRecord, cutoff: dt.datetime | None = None) -> HouseholdState:
    """State from the latest upload at or before ``cutoff`` (aware; None = all).

    Uploads after ``now`` are ignored by ``compute_progress`` the same way, so a table
    "as of" a past moment is reproducible."""
    latest: tuple[dt.datetime, str] | None = None
    for when, verdict in h.uploads:
        if cutoff is not None and when > cutoff:
            continue
        if latest is None or when >= latest[0]:
            latest = (when, verdict)
    return HouseholdState.NO_PHOTO if latest is None else _BY_VERDICT[latest[1]]


@dataclass(frozen=True)
class ProgressRow:
    town: str
    village: str  # "" for a town row and the county total
    village_id: str
    total: int
    accepted: int
    review: int
    retake: int
    no_photo: int
    done_yesterday: int
    rank: int = 0
    rank_yesterday: int = 0

    @property
    def done(self) -> int:
        return self.accepted + self.review

    @property
    def pct_done(self) -> float:
        return 100.0 * self.done / self.total if self.total else 0.0

    @property
    def pct_yesterday(self) -> float:
        return 100.0 * self.done_yesterday / self.total if self.total else 0.0

    @property
    def change_pct(self) -> float:
        """Percentage points gained since the end of yesterday."""
        return self.pct_done - self.pct_yesterday

    def to_json(self) -> dict:
        return {
            "town": self.town,
            "village": self.village,
            "village_id": self.village_id,
            "total": self.total,
            "accepted": self.accepted,
            "review": self.review,
            "retake": self.retake,
            "no_photo": self.no_photo,
            "done": self.done,
            "pct_done": round(self.pct_done, 2),
            "rank": self.rank,
            "done_yesterday": self.done_yesterday,
            "change_pct": round(self.change_pct, 2),
            "rank_yesterday": self.rank_yesterday,
        }


@dataclass(frozen=True)
class ProgressTable:
    as_of: dt.datetime  # aware
    yesterday_cutoff: dt.datetime  # 00:00 today, China time
    total: ProgressRow
    towns: list[ProgressRow]
    villages: list[ProgressRow]

    def to_json(self) -> dict:
        return {
            "as_of": self.as_of.isoformat(),
            "yesterday_cutoff": self.yesterday_cutoff.isoformat(),
            "total": self.total.to_json(),
            "towns": [r.to_json() for r in self.towns],
            "villages": [r.to_json() for r in self.villages],
        }


def _count(town: str, village: str, vid: str, states: Sequence[tuple[HouseholdState, bool]]):
    c = {s: 0 for s in HouseholdState}
    for state, _ in states:
        c[state] += 1
    return ProgressRow(
        town=town,
        village=village,
        village_id=vid,
        total=len(states),
        accepted=c[HouseholdState.ACCEPTED],
        review=c[HouseholdState.REVIEW],
        retake=c[HouseholdState.RETAKE],
        no_photo=c[HouseholdState.NO_PHOTO],
        done_yesterday=sum(1 for _, was_done in states if was_done),
    )


def _ranked(rows: list[ProgressRow]) -> list[ProgressRow]:
    """Competition ranking (1, 2, 2, 4) by share done, today and yesterday."""

    def ranks(key: Callable[[ProgressRow], float]) -> dict[int, int]:
        order = sorted(range(len(rows)), key=lambda i: -key(rows[i]))
        out: dict[int, int] = {}
        for pos, i in enumerate(order):
            prev = order[pos - 1] if pos else None
            if prev is not None and abs(key(rows[prev]) - key(rows[i])) < 1e-9:
                out[i] = out[prev]
            else:
                out[i] = pos + 1
        return out

    today = ranks(lambda r: r.pct_done)
    before = ranks(lambda r: r.pct_yesterday)
    ranked = [replace(r, rank=today[i], rank_yesterday=before[i]) for i, r in enumerate(rows)]
    return sorted(ranked, key=lambda r: (r.rank, r.town, r.village))


def compute_progress(
    households: Iterable[HouseholdRecord],
    villages: Iterable[VillageRecord],
    now: dt.datetime,
) -> ProgressTable:
    """Per village and town: counts, share done, rank, change since yesterday.

    ``now`` must be aware; villages without households still get a row (0 %).
    """
    if now.tzinfo is None:
        msg = "now must be timezone-aware"
        raise ValueError(msg)
    local_today = now.astimezone(CHINA_TZ).date()
    cutoff = dt.datetime.combine(local_today, dt.time(0, 0), tzinfo=CHINA_TZ)
    vmap = {v.village_id: v for v in villages}
    per_village: dict[str, list[tuple[HouseholdState, bool]]] = {vid: [] for vid in vmap}
    for h in households:
        was = household_state(h, cutoff)
        done_before = was in (HouseholdState.ACCEPTED, HouseholdState.REVIEW)
        per_village.setdefault(h.village_id, []).append((household_state(h, now), done_before))
    village_rows: list[ProgressRow] = []
    per_town: dict[str, list[tuple[HouseholdState, bool]]] = {}
    for vid, states in per_village.items():
        v = vmap.get(vid, VillageRecord(vid, vid, ""))
        village_rows.append(_count(v.town, v.name, vid, states))
        per_town.setdefault(v.town, []).extend(states)
    town_rows = [_count(t, "", "", s) for t, s in per_town.items()]
    everything = [s for states in per_village.values() for s in states]
    return ProgressTable(
        as_of=now,
        yesterday_cutoff=cutoff,
        total=_count("合计", "", "", everything),
        towns=_ranked(town_rows),
        villages=_ranked(village_rows),
    )


TOWN_HEADERS = [
    "排名",
    "乡镇",
    "总户数",
    "已通过",
    "待审核",
    "待重拍",
    "未上传",
    "完成率(%)",
    "较昨日(百分点)",
    "昨日排名",
]
VILLAGE_HEADERS = [
    "排名",
    "乡镇",
    "村（社区）",
    "总户数",
    "已通过",
    "待审核",
    "待重拍",
    "未上传",
    "完成率(%)",
    "较昨日(百分点)",
    "昨日排名",
]


def _cells(r: ProgressRow, *, village: bool) -> list:
    head = [r.rank or "", r.town] + ([r.village] if village else [])
    return [
        *head,
        r.total,
        r.accepted,
        r.review,
        r.retake,
        r.no_photo,
        round(r.pct_done, 1),
        round(r.change_pct, 1),
        r.rank_yesterday or "",
    ]


def _sheets(table: ProgressTable) -> list[tuple[str, list[str], list[list]]]:
    total = replace(table.total, rank=0, rank_yesterday=0)
    towns = [_cells(r, village=False) for r in table.towns] + [_cells(total, village=False)]
    villages = [_cells(r, village=True) for r in table.villages]
    villages.append(_cells(total, village=True))
    return [("乡镇排名", TOWN_HEADERS, towns), ("村排名", VILLAGE_HEADERS, villages)]


def progress_csv(table: ProgressTable, *, level: str = "village") -> bytes:
    """UTF-8 with BOM (so Excel on Chinese Windows opens it right), one level per file."""
    _, headers, rows = _sheets(table)[0 if level == "town" else 1]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(headers)
    w.writerows(rows)
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def progress_xlsx(table: ProgressTable) -> bytes:
    """A workbook with a town sheet and a village sheet, a total row on each."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    if wb.active is not None:
        wb.remove(wb.active)
    stamp = table.as_of.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M")
    for name, headers, rows in _sheets(table):
        ws = wb.create_sheet(name)
        ws.append([f"核验进度（截至 {stamp} 北京时间）"])
        ws.append(headers)
        for cell in ws[2]:
            cell.font = Font(bold=True)
        for row in rows:
            ws.append(row)
        for cell in ws[ws.max_row]:
            cell.font = Font(bold=True)
        ws.freeze_panes = "A3"
        for col, width in zip("ABCDEFGHIJK", [6, 14, 16, 9, 9, 9, 9, 9, 11, 14, 9], strict=False):
            ws.column_dimensions[col].width = width
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
