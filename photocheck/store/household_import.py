"""Parse and validate the county's household list (CSV or XLSX) before anything is stored.

Every row is checked first; if any row is bad the whole file is refused with one
row-numbered error per problem (row 1 is the header, as a spreadsheet shows it).
"""

from __future__ import annotations

import csv
import io
import math
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..control_chars import describe, find_control_char
from .models import Category

__all__ = [
    "CATEGORY_NAMES",
    "COLUMNS",
    "HouseholdRow",
    "ImportRejected",
    "RowError",
    "parse_household_file",
]

COLUMNS = ("household_id", "head_name", "town", "village", "category", "site_id", "lat", "lon")
REQUIRED = COLUMNS[:5]
MAX_ROWS = 200_000  # a county has at most ~100,000 households

CATEGORY_NAMES: dict[str, Category] = {
    "appraised": Category.APPRAISED,
    "鉴定安全": Category.APPRAISED,
    "renovated": Category.RENOVATED,
    "改造安全": Category.RENOVATED,
    "secured": Category.SECURED,
    "保障安全": Category.SECURED,
}


@dataclass(frozen=True)
class HouseholdRow:
    row: int
    household_id: str
    head_name: str
    town: str
    village: str
    category: Category
    site_id: str | None
    lat: float | None
    lon: float | None


@dataclass(frozen=True)
class RowError:
    row: int
    column: str | None
    message: str
    message_zh: str = ""  # the county clerk reads Chinese; a generic line when not given

    def to_json(self) -> dict[str, object]:
        where = f"第 {self.row} 行" if self.row else "文件"
        zh = self.message_zh or f"{where}{f' {self.column} 列' if self.column else ''}有误"
        return {"row": self.row, "column": self.column, "message": self.message, "message_zh": zh}


class ImportRejected(Exception):
    """The file was refused; ``errors`` says where and why."""

    def __init__(self, errors: Sequence[RowError]) -> None:
        self.errors = list(errors)
        super().__init__(f"{len(self.errors)} problem(s) in the household file")
        self.message_zh = f"农户名单有 {len(self.errors)} 处问题，未导入任何一行"


def parse_household_file(data: bytes, filename: str = "") -> list[HouseholdRow]:
    """Rows of a CSV (UTF-8, with or without BOM) or XLSX household list, all valid.

    :exception ImportRejected: the file cannot be read, or any row is invalid.
    """
    table = _xlsx_rows(data) if _is_xlsx(data, filename) else _csv_rows(data)
    return _validate(table)


def _is_xlsx(data: bytes, filename: str) -> bool:
    return filename.lower().endswith(".xlsx") or data[:4] == b"PK\x03\x04"


def _csv_rows(data: bytes) -> list[list[str]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        msg = f"the file is not UTF-8 text (byte {exc.start}); save the CSV as UTF-8"
        zh = f"文件不是 UTF-8 文本（第 {exc.start} 字节），请将 CSV 另存为 UTF-8 编码"
        raise ImportRejected([RowError(0, None, msg, zh)]) from None
    return [row for row in csv.reader(io.StringIO(text, newline=""))]


def _xlsx_rows(data: bytes) -> list[list[str]]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        msg = f"cannot read the XLSX file: {exc}"
        raise ImportRejected([RowError(0, None, msg, "无法读取该 XLSX 文件")]) from None
    try:
        sheet = wb.worksheets[0]
        return [
            ["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)
        ]
    finally:
        wb.close()


def _validate(table: list[list[str]]) -> list[HouseholdRow]:
    if not table:
        raise ImportRejected([RowError(1, None, "the file is empty", "文件是空的")])
    header = [h.strip().lower() for h in table[0]]
    missing = [c for c in REQUIRED if c not in header]
    unknown = [h for h in header if h and h not in COLUMNS]
    if missing or unknown:
        header_errors = [RowError(1, c, f"missing column {c}", f"缺少列 {c}") for c in missing]
        header_errors += [RowError(1, h, f"unknown column {h}", f"未知的列 {h}") for h in unknown]
        raise ImportRejected(header_errors)
    if len(table) - 1 > MAX_ROWS:
        raise ImportRejected(
            [RowError(0, None, f"more than {MAX_ROWS} rows", f"超过 {MAX_ROWS} 行")]
        )
    col = {name: header.index(name) for name in COLUMNS if name in header}
    rows: list[HouseholdRow] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(table[1:], start=2):
        if not any(cell.strip() for cell in raw):
            continue  # blank line
        cells = {name: (raw[i].strip() if i < len(raw) else "") for name, i in col.items()}
        bad = [(c, ch) for c, v in cells.items() if (ch := find_control_char(v)) is not None]
        if bad:
            errors += [
                RowError(number, c, f"contains a control character ({describe(ch)})")
                for c, ch in bad
            ]
            continue
        row, row_errors = _row(number, cells)
        if row is not None and row.household_id in seen:
            first = seen[row.household_id]
            row_errors.append(
                RowError(
                    number,
                    "household_id",
                    f"duplicate household_id (also row {first})",
                    f"户编号重复（与第 {first} 行相同）",
                )
            )
        errors.extend(row_errors)
        if row is not None and not row_errors:
            seen[row.household_id] = number
            rows.append(row)
    if errors:
        raise ImportRejected(errors)
    if not rows:
        raise ImportRejected([RowError(2, None, "no household rows", "没有农户数据行")])
    return rows


def _row(number: int, cells: dict[str, str]) -> tuple[HouseholdRow | None, list[RowError]]:
    errors = [
        RowError(number, c, f"{c} is empty", f"{c} 为空") for c in REQUIRED if not cells.get(c)
    ]
    category = CATEGORY_NAMES.get(cells.get("category", "").lower())
    if cells.get("category") and category is None:
        allowed = ", ".join(CATEGORY_NAMES)
        errors.append(
            RowError(
                number,
                "category",
                f"unknown category {cells['category']!r} ({allowed})",
                f"未知的类别「{cells['category']}」（可用：{allowed}）",
            )
        )
    for name in ("household_id", "head_name", "town", "village", "site_id"):
        if len(cells.get(name, "")) > 64 or any(ch in cells.get(name, "") for ch in "/\\\0"):
            msg = f"{name} is too long or contains / \\ or NUL"
            errors.append(RowError(number, name, msg, f"{name} 太长或含有 / \\ 或空字符"))
    lat, lon, coord_errors = _coords(number, cells.get("lat", ""), cells.get("lon", ""))
    errors.extend(coord_errors)
    if errors or category is None:
        return None, errors
    row = HouseholdRow(
        row=number,
        household_id=cells["household_id"],
        head_name=cells["head_name"],
        town=cells["town"],
        village=cells["village"],
        category=category,
        site_id=cells.get("site_id") or None,
        lat=lat,
        lon=lon,
    )
    return row, []


def _coords(
    number: int, lat_s: str, lon_s: str
) -> tuple[float | None, float | None, list[RowError]]:
    if not lat_s and not lon_s:
        return None, None, []
    if not lat_s or not lon_s:
        return (
            None,
            None,
            [
                RowError(
                    number,
                    "lat" if not lat_s else "lon",
                    "give both lat and lon",
                    "经纬度须同时填写",
                )
            ],
        )
    errors = []
    values: list[float] = []
    for name, text, bound in (("lat", lat_s, 90.0), ("lon", lon_s, 180.0)):
        try:
            value = float(text)
        except ValueError:
            zh = f"{name}「{text}」不是数字"
            errors.append(RowError(number, name, f"{name} {text!r} is not a number", zh))
            continue
        if not math.isfinite(value) or abs(value) > bound:
            zh = f"{name} {value} 超出范围"
            errors.append(RowError(number, name, f"{name} {value} is out of range", zh))
        values.append(value)
    if not errors and values[0] == 0 and values[1] == 0:
        zh = "经纬度 0,0 不是真实位置"
        errors.append(RowError(number, "lat", "lat/lon 0,0 is not a real location", zh))
    if errors:
        return None, None, errors
    return values[0], values[1], []


def distinct(rows: Iterable[HouseholdRow]) -> list[tuple[str, str]]:
    """The (town, village) pairs of the rows, in first-seen order."""
    return list(dict.fromkeys((r.town, r.village) for r in rows))
