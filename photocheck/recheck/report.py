"""A run's change report: the households whose verdict changed, old -> new, and why.

"Why" is the reason codes the new verdict adds and the ones it drops, each named in
both languages; a household counts by its current photo at the run's start. The page
shows it and ``changes_xlsx`` gives it as a workbook for the county office's files.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from ..audit.records import CHINA_TZ
from ..audit.single import REASON_LABELS
from ..store.models import Household, Town, Village
from .runs import FAILED, RunView
from .tables import PhotoVerdict

__all__ = ["Change", "change_report", "changes_xlsx"]

VERDICT_LABELS = {"accept": ("通过", "accepted"), "review": ("待审核", "in review"),
                  "reject": ("需重拍", "retake needed"),
                  FAILED: ("复核失败", "re-check failed")}  # fmt: skip
# reason codes of a run's records only (never a photo's verdict)
RECORD_LABELS = {"RECHECK_FAILED": ("复核失败，保留原结果", "re-check failed, verdict kept")}


@dataclass(frozen=True)
class Change:
    household_id: str
    head_name: str
    town: str
    village: str
    photo_id: int
    old_verdict: str
    new_verdict: str
    added: tuple[str, ...]  # reason codes
    removed: tuple[str, ...]
    new_reasons: tuple[dict[str, Any], ...]  # the new verdict's reasons (bilingual text)

    def to_json(self) -> dict[str, Any]:
        return {
            "household_id": self.household_id,
            "head_name": self.head_name,
            "town": self.town,
            "village": self.village,
            "photo_id": self.photo_id,
            "old_verdict": self.old_verdict,
            "new_verdict": self.new_verdict,
            "reasons_added": [label_json(c) for c in self.added],
            "reasons_removed": [label_json(c) for c in self.removed],
            "reasons": list(self.new_reasons),
        }


def label_json(code: str) -> dict[str, str]:
    zh, en = REASON_LABELS.get(code) or RECORD_LABELS.get(code, (code, code))
    return {"code": code, "label_zh": zh, "label_en": en}


def change_report(session: Session, run_id: int) -> list[Change]:
    """The households of the run whose current photo's verdict changed, and every
    photo of the run that could not be checked (new verdict ``failed``)."""
    rows = session.execute(
        select(PhotoVerdict, Household.household_code, Household.head_name, Village.name, Town.name)
        .join(Household, Household.id == PhotoVerdict.household_id)
        .join(Village, Village.id == Household.village_id)
        .join(Town, Town.id == Village.town_id)
        .where(
            PhotoVerdict.run_id == run_id,
            PhotoVerdict.verdict.is_not(None),
            or_(
                and_(
                    PhotoVerdict.is_current.is_(True),
                    PhotoVerdict.verdict != PhotoVerdict.old_verdict,
                ),
                PhotoVerdict.verdict == FAILED,
            ),
        )
        .order_by(Town.name, Village.name, Household.household_code)
    )
    out = []
    for record, code, head, village, town in rows:
        old = _codes(record.old_reasons)
        new = _codes(record.reasons)
        out.append(
            Change(
                code,
                head,
                town,
                village,
                record.photo_id,
                record.old_verdict or "",
                record.verdict or "",
                tuple(c for c in new if c not in old),
                tuple(c for c in old if c not in new),
                tuple(r for r in record.reasons or [] if isinstance(r, dict)),
            )
        )
    return out


def _codes(reasons: list[Any] | None) -> list[str]:
    return [str(r.get("code")) for r in reasons or [] if isinstance(r, dict)]


def changes_xlsx(view: RunView, changes: list[Change]) -> bytes:
    """Two sheets: the changed households (bilingual headers), and the run's summary."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "变化清单 Changes"
    ws.append([f"回头看复核 {view.run.id} · 政策 {view.run.policy_version} · 模型 "
               f"{view.run.model_version}"])  # fmt: skip
    ws.append(["乡镇 Town", "村 Village", "农户编号 Household ID", "户主 Head",
               "原结果 Old", "新结果 New", "新增原因 Reasons added",
               "去掉的原因 Reasons removed", "新结果说明 New reasons"])  # fmt: skip
    for cell in ws[2]:
        cell.font = Font(bold=True)
    for c in changes:
        ws.append(
            [
                c.town,
                c.village,
                c.household_id,
                c.head_name,
                _verdict(c.old_verdict),
                _verdict(c.new_verdict),
                _labels(c.added),
                _labels(c.removed),
                "；".join(f"{r.get('message_zh', '')} / {r.get('message_en', '')}"
                         for r in c.new_reasons),
            ]
        )  # fmt: skip
    ws.freeze_panes = "A3"
    for col, width in zip("ABCDEFGHI", [12, 12, 16, 10, 16, 16, 30, 30, 60], strict=True):
        ws.column_dimensions[col].width = width
    summary = wb.create_sheet("汇总 Summary")
    for row in _summary(view):
        summary.append(row)
    summary.column_dimensions["A"].width = 30
    summary.column_dimensions["B"].width = 40
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _verdict(value: str) -> str:
    zh, en = VERDICT_LABELS.get(value, (value, value))
    return f"{zh} {en}"


def _labels(codes: tuple[str, ...]) -> str:
    return "；".join(f"{label_json(c)['label_zh']} {c}" for c in codes)


def _when(iso: str | None) -> str:
    if not iso:
        return ""
    from datetime import datetime

    return datetime.fromisoformat(iso).astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S")


def _summary(view: RunView) -> list[list[Any]]:
    j = view.to_json()
    rows: list[list[Any]] = [
        ["复核编号 Run", j["run_id"]],
        ["范围 Scope", j["town"] or "全县 whole county"],
        ["状态 State", j["state"]],
        ["政策版本 Policy version", j["policy_version"]],
        ["模型版本 Model version", j["model_version"]],
        ["照片 Photos (done / total)", f"{j['done']} / {j['total']}"],
        ["发起人 Started by", j["started_by"]],
        ["发起时间 Started (Beijing)", _when(j["started_at"])],
        ["完成时间 Finished (Beijing)", _when(j["finished_at"])],
        ["确认人 Confirmed by", j["confirmed_by"] or ""],
        ["确认时间 Confirmed (Beijing)", _when(j["confirmed_at"])],
        ["结果变化的农户 Households changed", j["changed_households"]],
        ["复核失败的照片 Photos not checked (verdict kept)", j["failed"]],
    ]
    for change, n in j["changes"].items():
        old, _, new = change.partition("->")
        rows.append([f"{_verdict(old)} → {_verdict(new)}", n])
    return rows
