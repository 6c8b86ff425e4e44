"""Audit findings, decisions and the progress ranking (JSON, CSV, XLSX)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from photocheck.audit import (
    KIND_LABELS,
    FindingKind,
    ProgressTable,
    compute_progress,
    progress_csv,
    progress_xlsx,
)
from photocheck.audit.storage import (
    DecisionError,
    decide_finding,
    earlier_findings,
    load_progress,
    pending_photos,
    query_findings,
    refresh_state,
)
from photocheck.audit.tables import AuditEvent, AuditFindingRow, FindingStatus
from photocheck.store import Role, Town, User, Village

from ..audit import finding_scope, require_decider, visible
from ..deps import MAX_DB_ID, CurrentUser, SessionDep, State, parse_db_id
from ..errors import ApiError
from ..state import AppState

router = APIRouter(tags=["audit"])

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class Decision(BaseModel):
    action: Literal["confirm", "dismiss", "reopen"]
    note: str | None = Field(default=None, max_length=2000)


def resolve_area(
    session: Session, county_id: int, town: str | None, village: str | None
) -> tuple[int | None, int | None]:
    """Town / village filters given as an ID or a name (within the county)."""
    town_id = village_id = None
    if town:
        q = select(Town.id).where(Town.county_id == county_id)
        town_number = parse_db_id(town)
        if town_number is not None:
            q = q.where(Town.id == town_number)
        else:
            q = q.where(Town.name == town)
        town_id = session.scalar(q)
        if town_id is None:
            raise ApiError(
                404,
                "TOWN_NOT_FOUND",
                f"no town {town!r} in this county",
                message_zh=f"本县没有乡镇「{town}」",
            )
    if village:
        q = select(Village.id).join(Town).where(Town.county_id == county_id)
        village_number = parse_db_id(village)
        if village_number is not None:
            q = q.where(Village.id == village_number)
        else:
            q = q.where(Village.name == village)
            if town_id is not None:
                q = q.where(Village.town_id == town_id)
        village_id = session.scalar(q)
        if village_id is None:
            raise ApiError(
                404,
                "VILLAGE_NOT_FOUND",
                f"no village {village!r} in this county",
                message_zh=f"本县没有村「{village}」",
            )
    return town_id, village_id


def finding_json(row: AuditFindingRow, lang: str = "zh") -> dict[str, Any]:
    zh, en = KIND_LABELS.get(FindingKind(row.kind), (row.kind, row.kind))
    return {
        "id": row.id,
        "kind": row.kind,
        "kind_label": en if lang == "en" else zh,
        "severity": row.severity,
        "status": row.status,
        "active": row.active,
        "summary_zh": row.summary_zh,
        "summary_en": row.summary_en,
        "day": row.day.isoformat() if row.day else None,
        "photo_ids": row.photo_ids,
        "household_ids": row.household_codes,
        "village_ids": row.village_ids,
        "town_id": row.town_id,
        "earlier_ids": row.earlier_ids or [],
        "evidence": row.evidence,
        "note": row.note,
        "decided_by": row.decided_by,
        "decided_at": row.decided_at.isoformat() if row.decided_at else None,
        "first_seen": row.first_seen.isoformat(),
    }


def status_json(state: AppState, session: Session, county_id: int) -> dict[str, Any]:
    """When the stored findings were computed and how many photos they do not include."""
    refresh = refresh_state(session, county_id)
    worker = state.audit
    return {
        "computed_at": refresh.computed_at.isoformat() if refresh else None,
        "seconds": refresh.seconds if refresh else None,
        "pending_photos": pending_photos(session, county_id),
        "refreshing": worker is not None and worker.running == county_id,
        "last_error": worker.last_error if worker is not None else None,
    }


def earlier_json(session: Session, row: AuditFindingRow) -> list[dict[str, Any]]:
    """The decided findings this one grew from, with their trails."""
    return [
        {
            "id": e.id,
            "status": e.status,
            "note": e.note,
            "decided_at": e.decided_at.isoformat() if e.decided_at else None,
            "photo_ids": e.photo_ids,
            "household_ids": e.household_codes,
            "new_household_ids": [h for h in row.household_codes if h not in e.household_codes],
            "events": events_json(session, e.id),
        }
        for e in earlier_findings(session, row)
    ]


def events_json(session: Session, finding_id: str) -> list[dict[str, Any]]:
    rows = session.execute(
        select(AuditEvent, User.username)
        .join(User, AuditEvent.user_id == User.id)
        .where(AuditEvent.finding_id == finding_id)
        .order_by(AuditEvent.id)
    )
    return [
        {
            "action": e.action,
            "status_before": e.status_before,
            "status_after": e.status_after,
            "note": e.note,
            "by": name,
            "at": e.at.isoformat(),
        }
        for e, name in rows
    ]


@router.get("/audit/findings")
def list_findings(
    state: State,
    session: SessionDep,
    user: CurrentUser,
    town: str | None = None,
    village: str | None = None,
    kind: FindingKind | None = None,
    status: FindingStatus | None = None,
    date: dt.date | None = None,
    include_inactive: bool = False,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    offset: Annotated[int, Query(ge=0, le=MAX_DB_ID)] = 0,
) -> dict[str, Any]:
    """Findings in the caller's county (or town) as last computed (``status`` says when
    and how many photos are not included yet); filters combine. A town filter matches
    a finding when any of its photos is in the town."""
    county_id, own_town = finding_scope(user)
    town_id, village_id = resolve_area(session, county_id, town, village)
    if own_town is not None:
        if town_id not in (None, own_town):
            raise ApiError(
                403,
                "FORBIDDEN",
                "a town account sees its own town only",
                message_zh="乡镇账号只能查看本乡镇",
            )
        town_id = own_town
    total, rows = query_findings(
        session,
        county_id,
        town_id=town_id,
        village_id=village_id,
        kind=kind.value if kind else None,
        status=status.value if status else None,
        day=date,
        active_only=not include_inactive,
        limit=limit,
        offset=offset,
    )
    return {
        "total": total,
        "status": status_json(state, session, county_id),
        "findings": [finding_json(r) for r in rows],
    }


@router.get("/audit/status")
def audit_status(state: State, session: SessionDep, user: CurrentUser) -> dict[str, Any]:
    """When the findings were computed, photos pending, whether a refresh is running."""
    county_id, _ = finding_scope(user)
    return status_json(state, session, county_id)


@router.post("/audit/refresh", responses={202: {"description": "queued"}})
def audit_refresh(
    state: State, session: SessionDep, user: CurrentUser, response: Response, wait: bool = False
) -> dict[str, Any]:
    """Recompute the county's findings now (county accounts). ``wait=true`` answers
    after the refresh (200); otherwise it is queued (202)."""
    county_id, _ = finding_scope(user)
    if user.role != Role.COUNTY:
        raise ApiError(
            403,
            "FORBIDDEN",
            "a refresh is started by a county account",
            message_zh="只有县级账号可以更新核查结果",
        )
    if state.audit is None:
        raise ApiError(503, "AUDIT_UNAVAILABLE", "the audit worker is not running")
    if not wait:
        state.audit.request(county_id)
        response.status_code = 202
        return status_json(state, session, county_id)
    ticket = state.audit.run_now(county_id)
    if ticket.error:
        raise ApiError(503, "AUDIT_REFRESH_FAILED", ticket.error)
    session.expire_all()
    return {**status_json(state, session, county_id), "result": vars(ticket.result)}


def _visible_finding(session: Session, finding_id: str, user: User) -> AuditFindingRow:
    row = session.get(AuditFindingRow, finding_id)
    if row is None or not visible(session, row, user):
        raise ApiError(
            404,
            "FINDING_NOT_FOUND",
            f"no finding {finding_id!r} in your area",
            message_zh=f"你的管辖范围内没有核查线索 {finding_id}",
        )
    return row


@router.get("/audit/findings/{finding_id}")
def get_finding(session: SessionDep, user: CurrentUser, finding_id: str) -> dict[str, Any]:
    """One finding with its audit trail, and the decided findings it grew from."""
    row = _visible_finding(session, finding_id, user)
    return {
        **finding_json(row),
        "events": events_json(session, row.id),
        "earlier": earlier_json(session, row),
    }


@router.post("/audit/findings/{finding_id}/decision")
def post_decision(
    state: State, user: CurrentUser, finding_id: str, decision: Decision
) -> dict[str, Any]:
    """Confirm or dismiss (a note is required to dismiss), or reopen; kept in the trail.
    County accounts only (a town account reads: 403)."""
    require_decider(user)
    with state.db.write() as session:
        row = _visible_finding(session, finding_id, user)
        try:
            decide_finding(session, row, user.id, decision.action, decision.note)
        except DecisionError as exc:
            raise ApiError(422, "INVALID_DECISION", str(exc)) from exc
        session.flush()
        return {**finding_json(row), "events": events_json(session, row.id)}


@router.get("/progress", response_model=None)
def progress(
    session: SessionDep,
    user: CurrentUser,
    format: Literal["json", "csv", "xlsx"] = "json",
    level: Literal["village", "town"] = "village",
) -> Response | dict[str, Any]:
    """Per town and village: counts, share done, rank, change since yesterday. The
    county's whole ranking, for county and town accounts, as on the /audit page."""
    county_id, _ = finding_scope(user)  # the same scope as /audit/progress
    table = county_progress(session, county_id)
    stamp = table.as_of.strftime("%Y%m%d")
    if format == "csv":
        return Response(
            progress_csv(table, level=level),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="progress-{stamp}.csv"'},
        )
    if format == "xlsx":
        return Response(
            progress_xlsx(table),
            media_type=XLSX,
            headers={"Content-Disposition": f'attachment; filename="progress-{stamp}.xlsx"'},
        )
    return table.to_json()


def county_progress(session: Session, county_id: int) -> ProgressTable:
    data = load_progress(session, county_id)
    return compute_progress(data.households, data.villages, dt.datetime.now(dt.UTC))
