"""The look-back re-check (回头看) over HTTP: start, pause, resume, confirm, progress and
the change report (JSON or XLSX). The work is the library's (``photocheck.recheck``);
the /audit page offers the same actions as forms and polls ``GET /rechecks/{id}``.

A county account acts; a town account reads the runs of the county and of its town
(read-only role); a village account sees none of it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from photocheck.errors import RecheckRefused
from photocheck.recheck.report import change_report, changes_xlsx
from photocheck.recheck.runs import Recheck
from photocheck.recheck.tables import RecheckRun
from photocheck.store import Role, Town, User

from ..audit import finding_scope
from ..deps import CurrentUser, DbId, SessionDep, State
from ..errors import ApiError, recheck_error
from ..state import AppState

router = APIRouter(tags=["recheck"])

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class RecheckStart(BaseModel):
    town: str | None = Field(default=None, max_length=100, description="a town of the county")


def require_county(user: User) -> None:
    """Starting, pausing, resuming and confirming are the county's; a town reads."""
    if user.role != Role.COUNTY:
        raise ApiError(
            403,
            "FORBIDDEN",
            "a re-check is started, paused and confirmed by a county account; a town reads",
            message_zh="回头看复核由县级账号发起、暂停和确认，乡镇账号只能查看",
        )


def recheck_service(state: AppState) -> Recheck:
    assert state.recheck is not None  # built with the state
    return state.recheck


def visible_run(session: Session, user: User, run_id: int) -> RecheckRun:
    """A run of the caller's county (a town: the county's or its own town's)."""
    county_id, town_id = finding_scope(user)  # village accounts: 403
    run = session.get(RecheckRun, run_id)
    if (
        run is None
        or run.county_id != county_id
        or (town_id is not None and run.town_id not in (None, town_id))
    ):
        raise ApiError(
            404,
            "RECHECK_NOT_FOUND",
            f"no re-check {run_id} in your area",
            message_zh=f"你的管辖范围内没有编号为 {run_id} 的回头看复核",
        )
    return run


def town_id_of(session: Session, county_id: int, name: str | None) -> int | None:
    if not name:
        return None
    town_id = session.scalar(select(Town.id).where(Town.county_id == county_id, Town.name == name))
    if town_id is None:
        raise ApiError(
            404,
            "TOWN_NOT_FOUND",
            f"no town {name!r} in this county",
            message_zh=f"本县没有乡镇「{name}」",
        )
    return town_id


def act(state: AppState, user: User, run_id: int, action: str) -> RecheckRun:
    """pause / resume / confirm, the library's refusals as answers."""
    require_county(user)
    service = recheck_service(state)
    do = {"pause": service.pause, "resume": service.resume, "confirm": service.confirm}[action]
    try:
        return do(run_id, user.county_id, user.id)
    except RecheckRefused as exc:
        raise recheck_error(exc) from None


def start(state: AppState, user: User, town_id: int | None) -> RecheckRun:
    require_county(user)
    try:
        return recheck_service(state).start(user.county_id, user.id, town_id)
    except RecheckRefused as exc:
        raise recheck_error(exc) from None


def run_json(state: AppState, session: Session, run: RecheckRun) -> dict[str, Any]:
    return recheck_service(state).view(session, run).to_json()


@router.post("/rechecks", status_code=201)
def start_recheck(
    body: RecheckStart, user: CurrentUser, state: State, session: SessionDep
) -> dict[str, Any]:
    """Re-check every stored photo of the county (or of ``town``) under the current
    policy and model; 409 ``RECHECK_RUNNING`` while another run is running or paused."""
    require_county(user)
    run = start(state, user, town_id_of(session, user.county_id, body.town))
    return run_json(state, session, run)


@router.get("/rechecks")
def list_rechecks(user: CurrentUser, state: State, session: SessionDep) -> list[dict[str, Any]]:
    """The runs of the caller's county, newest first."""
    county_id, town_id = finding_scope(user)
    query = select(RecheckRun).where(RecheckRun.county_id == county_id)
    if town_id is not None:
        query = query.where(RecheckRun.town_id.is_(None) | (RecheckRun.town_id == town_id))
    runs = session.scalars(query.order_by(RecheckRun.id.desc()).limit(50))
    return [run_json(state, session, r) for r in runs]


@router.get("/rechecks/{run_id}")
def get_recheck(
    run_id: DbId, user: CurrentUser, state: State, session: SessionDep
) -> dict[str, Any]:
    """Progress (done / total, time left), who started / confirmed it, counts by change."""
    return run_json(state, session, visible_run(session, user, run_id))


def _action(
    state: AppState, session: Session, user: User, run_id: int, action: str
) -> dict[str, Any]:
    require_county(user)  # the role first: a town learns nothing about run ids
    visible_run(session, user, run_id)
    run = act(state, user, run_id, action)
    session.expire_all()
    return run_json(state, session, run)


@router.post("/rechecks/{run_id}/pause")
def pause_recheck(
    run_id: DbId, user: CurrentUser, state: State, session: SessionDep
) -> dict[str, Any]:
    """The batches in flight finish; no new one starts (409 unless running)."""
    return _action(state, session, user, run_id, "pause")


@router.post("/rechecks/{run_id}/resume")
def resume_recheck(
    run_id: DbId, user: CurrentUser, state: State, session: SessionDep
) -> dict[str, Any]:
    """Queue the unfinished batches again (409 unless paused)."""
    return _action(state, session, user, run_id, "resume")


@router.post("/rechecks/{run_id}/confirm")
def confirm_recheck(
    run_id: DbId, user: CurrentUser, state: State, session: SessionDep
) -> dict[str, Any]:
    """Switch retake lists and progress to the run's verdicts (409 unless done)."""
    return _action(state, session, user, run_id, "confirm")


@router.get("/rechecks/{run_id}/changes", response_model=None)
def recheck_changes(
    run_id: DbId,
    user: CurrentUser,
    state: State,
    session: SessionDep,
    format: Annotated[Literal["json", "xlsx"], Query()] = "json",
) -> Response | list[dict[str, Any]]:
    """The households whose verdict changed: old -> new, reason codes added / removed."""
    run = visible_run(session, user, run_id)
    changes = scoped_changes(session, user, run)
    if format == "xlsx":
        body = changes_xlsx(recheck_service(state).view(session, run), changes)
        name = f"recheck-{run.id}-changes.xlsx"
        disposition = f'attachment; filename="{name}"'
        return Response(body, media_type=XLSX, headers={"Content-Disposition": disposition})
    return [c.to_json() for c in changes]


def scoped_changes(session: Session, user: User, run: RecheckRun) -> list:
    """The change report; a town account's is limited to its own town."""
    changes = change_report(session, run.id)
    if user.role == Role.TOWN and user.town_id is not None:
        town = session.get(Town, user.town_id)
        changes = [c for c in changes if town is not None and c.town == town.name]
    return changes
