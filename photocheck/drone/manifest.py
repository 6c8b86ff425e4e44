"""The package manifest: one CSV row per photo, UTF-8 with a BOM so Excel reads Chinese.

Text cells that a spreadsheet would run as a formula (=, +, -, @ first) are prefixed
with an apostrophe; numbers are written plainly.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable
from dataclasses import dataclass

from .naming import SiteKind

__all__ = ["MANIFEST_COLUMNS", "ManifestRow", "manifest_csv"]

MANIFEST_COLUMNS = (
    "文件名 name",
    "站点编号 site_id",
    "站点 site",
    "类型 kind",
    "拍摄时间 capture_time",
    "纬度 lat",
    "经度 lon",
    "相对高度(米) relative_altitude_m",
    "SHA-256",
    "关联户 households",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ManifestRow:
    name: str
    site_id: str
    site_name: str
    kind: SiteKind
    capture_time: dt.datetime | None
    lat: float | None
    lon: float | None
    relative_altitude_m: float | None
    sha256: str
    households: tuple[str, ...] = ()


def manifest_csv(rows: Iterable[ManifestRow]) -> bytes:
    """The manifest bytes: BOM, header, one row per photo, CRLF line ends (Excel's)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(MANIFEST_COLUMNS)
    for r in rows:
        writer.writerow(
            [
                _text(r.name),
                _text(r.site_id),
                _text(r.site_name),
                f"{r.kind.label_zh} {r.kind.label_en}",
                r.capture_time.isoformat(sep=" ") if r.capture_time else "",
                _number(r.lat, 7),
                _number(r.lon, 7),
                _number(r.relative_altitude_m, 1),
                r.sha256,
                _text("; ".join(r.households)),
            ]
        )
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def _text(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def _number(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"
