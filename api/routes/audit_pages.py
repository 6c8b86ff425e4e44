"""The audit web page at /audit: server-rendered Jinja2, no build step, no JavaScript
needed. Chinese by default, English with ``?lang=en`` (remembered in a cookie).

The same accounts log in through a form that stores the same bearer token in an
HttpOnly cookie (SameSite=Lax), checked like a bearer token on every request (a password
change or reset ends the session). Every form that changes something (logout included)
carries a CSRF token, an HMAC of the session under the secret key, and every POST whose
Origin or Referer names another host is refused: another site cannot make a logged-in
official's browser decide a finding, start a refresh, log in or log out.
"""

from __future__ import annotations

import datetime as dt
import hmac
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session

from photocheck.audit import CHINA_TZ, KIND_LABELS, FindingKind, progress_csv, progress_xlsx
from photocheck.audit.match_picture import has_match_points, match_caption
from photocheck.audit.sketch import SketchPoint, position_sketch, progress_bars
from photocheck.audit.storage import (
    DecisionError,
    decide_finding,
    earlier_findings,
    query_findings,
)
from photocheck.audit.tables import AuditFindingRow, FindingStatus
from photocheck.recheck.report import Change, changes_xlsx, label_json
from photocheck.recheck.tables import RecheckRun
from photocheck.store import Household, Photo, PhotoMatch, Role, Town, User, Village

from ..audit import (
    finding_scope,
    match_picture_bytes,
    photo_visible,
    preview_bytes,
    require_decider,
    visible,
)
from ..deps import (
    MAX_DB_ID,
    DbId,
    DbIdFilter,
    SessionDep,
    State,
    get_state,
    parse_db_id,
    user_for_token,
)
from ..downloads import ranged_response
from ..errors import ApiError
from ..page_session import COOKIE, LANG_COOKIE
from ..page_session import csrf_token as _csrf
from ..page_session import page_lang as _lang
from . import auth
from .audit import XLSX, county_progress, events_json, status_json
from .rechecks import act, recheck_service, require_county, scoped_changes, visible_run
from .rechecks import start as start_run

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def same_origin(request: Request) -> None:
    """Refuse a POST sent by a page of another site (its Origin, or else its Referer,
    names another host). Requests without either (curl, tools) still need the CSRF token."""
    if request.method in SAFE_METHODS:
        return
    origin = request.headers.get("origin")
    source = origin or request.headers.get("referer")
    if source is None:
        return
    host = request.headers.get("host", "")
    if origin == "null" or urlsplit(source).netloc.lower() != host.lower():
        raise ApiError(
            403,
            "CROSS_ORIGIN",
            f"a form sent from another site ({source[:100]}) is refused; use the audit page",
            message_zh="拒绝来自其他网站的表单提交，请在审计页面本身操作",
        )


router = APIRouter(prefix="/audit", include_in_schema=False, dependencies=[Depends(same_origin)])
templates = Jinja2Templates(directory=str(Path(__file__).resolve().parent.parent / "templates"))
# an unknown value shows as a dash, never as "None" (set before any template compiles)
templates.env.finalize = lambda value: "—" if value is None else value


TEXT: dict[str, tuple[str, str]] = {
    "title": ("住房安全核验 · 县级审计", "Housing safety verification · county audit"),
    "findings": ("问题清单", "Findings"),
    "progress": ("进度排名", "Progress ranking"),
    "logout": ("退出", "Log out"),
    "login": ("登录", "Log in"),
    "error_title": ("无法打开此页面", "This page cannot be shown"),
    "login_other": ("换一个账号登录", "Log in with another account"),
    "username": ("账号", "Account"),
    "password": ("密码", "Password"),
    "bad_login": ("账号或密码错误", "Wrong account or password"),
    "change_pw": ("请先在录入应用中修改初始密码", "Change the initial password in the app first"),
    "town": ("乡镇", "Town"),
    "village": ("村（社区）", "Village"),
    "kind": ("类型", "Kind"),
    "status": ("状态", "Status"),
    "date": ("日期", "Date"),
    "all": ("全部", "All"),
    "filter": ("筛选", "Filter"),
    "severity": ("严重程度", "Severity"),
    "summary": ("说明", "What was found"),
    "households": ("涉及农户", "Households"),
    "count": ("共 {n} 条", "{n} findings"),
    "open": ("待处理", "Open"),
    "confirmed": ("已确认问题", "Confirmed"),
    "dismissed": ("已排除", "Dismissed"),
    "high": ("高", "High"),
    "medium": ("中", "Medium"),
    "low": ("低", "Low"),
    "photos": ("照片", "Photos"),
    "position": ("位置示意（相对村中心）", "Positions (against the village centre)"),
    "evidence": ("依据", "Evidence"),
    "decision": ("处理", "Decision"),
    "note": ("备注（排除时必填）", "Note (required to dismiss)"),
    "confirm": ("确认有问题", "Confirm problem"),
    "dismiss": ("排除（无问题）", "Dismiss (no problem)"),
    "reopen": ("重新打开", "Reopen"),
    "history": ("处理记录", "Audit trail"),
    "no_history": ("尚无处理记录", "No decisions yet"),
    "head": ("户主", "Head of household"),
    "verifier": ("核验员账号", "Verifier account"),
    "taken": ("拍摄时间", "Taken"),
    "uploaded": ("上传时间", "Uploaded"),
    "gps": ("定位", "GPS"),
    "camera": ("相机", "Camera"),
    "verdict": ("检查结果", "Check result"),
    "none": ("无", "none"),
    "full_size": ("点击看原图", "click for full size"),
    "back": ("返回清单", "Back to the list"),
    "rank": ("排名", "Rank"),
    "total": ("总户数", "Households"),
    "accepted": ("已通过", "Accepted"),
    "review": ("待审核", "In review"),
    "retake": ("待重拍", "Retake"),
    "no_photo": ("未上传", "No photo"),
    "pct": ("完成率", "Done"),
    "change": ("较昨日", "Since yesterday"),
    "download": ("下载", "Download"),
    "as_of": ("截至", "As of"),
    "legend": ("绿=已通过 黄=待审核 红=待重拍 灰=未上传",
               "green = accepted, yellow = in review, red = retake, grey = no photo"),
    "done_note": ("完成 = 已上传且无需重拍（已通过或待审核）",
                  "done = a photo on file that needs no retake (accepted or in review)"),
    "village_rank": ("村排名", "Villages"),
    "town_rank": ("乡镇排名", "Towns"),
    "page": ("页", "page"),
    "next": ("下一页", "Next page"),
    "prev": ("上一页", "Previous page"),
    "decided": ("已处理", "Decided"),
    "centre": ("村中心", "village centre"),
    "no_gps": ("照片均无定位信息", "none of the photos has a GPS position"),
    "household_code": ("农户编号", "Household ID"),
    "beijing": ("北京时间", "Beijing time"),
    "computed_at": ("问题清单计算于 {when}（北京时间）",
                    "Findings computed at {when} (Beijing time)"),
    "not_computed": ("问题清单尚未计算", "The findings have not been computed yet"),
    "pending": ("，另有 {n} 张新照片待计入", ", {n} new photos pending"),
    "up_to_date": ("，已包含全部照片", ", all photos included"),
    "refreshing": ("（正在更新…）", " (updating…)"),
    "auto_refresh": ("新照片会在后台自动计入，几分钟内生效。",
                     "New photos are included automatically in the background within minutes."),
    "refresh": ("立即更新", "Update now"),
    "refresh_queued": ("已安排更新，稍后刷新本页查看。",
                       "Update queued; reload this page shortly."),
    "earlier": ("此前的处理", "Earlier decision"),
    "earlier_note": (
        "这组照片中的 {n} 张（{households}）此前作为另一条问题处理过，结果如下。"
        "之后又加入了新照片（{new}），新照片尚未处理，所以本条状态为“待处理”；"
        "请查看新照片后确认或排除。",
        "{n} of these photos ({households}) were decided earlier as another finding, shown "
        "below. New photos joined since ({new}); they have not been decided, so this finding "
        "is open: look at the new photos, then confirm or dismiss."),
    "earlier_mark": ("此前：{status}", "earlier: {status}"),
    "decided_by": ("处理人", "decided by"),
    "match_title": ("同一房屋的比对依据", "Why these photos show the same house"),
    "read_only": ("乡镇账号只能查看，确认或排除由县级账号处理",
                  "a town account reads only; the county confirms or dismisses"),
    "recheck": ("回头看复核", "Look-back re-check"),
    "recheck_intro": ("按当前政策和模型重新检查已上传的全部照片。"
                      "每张照片另存一条新的检查结果，原结果保留；"
                      "县级确认之前，各村看到的结果和待重拍清单都不变。",
                      "Checks every stored photo again under the current policy and model. Each "
                      "photo gets a new verdict record beside the old one; until the county "
                      "confirms, nothing the villages see changes."),
    "recheck_scope": ("范围", "Scope"),
    "whole_county": ("全县", "the whole county"),
    "recheck_start": ("开始复核", "Start the re-check"),
    "recheck_busy": ("已有复核在进行或暂停中，完成后才能开始新的复核。",
                     "A re-check is running or paused; a new one can start when it is done."),
    "recheck_none": ("尚未进行过回头看复核。", "No re-check yet."),
    "run": ("复核", "Re-check"),
    "run_state": ("状态", "State"),
    "run_running": ("进行中", "running"),
    "run_paused": ("已暂停", "paused"),
    "run_done": ("已完成，待确认", "done, waiting for confirmation"),
    "run_confirmed": ("已确认，新结果已生效", "confirmed: the new verdicts are in effect"),
    "run_superseded": ("已被新的复核取代（未确认）", "superseded by a newer run (never confirmed)"),
    "policy_version": ("政策版本", "Policy version"),
    "model_version": ("模型版本", "Model version"),
    "progress_done": ("已检查 {done} / {total} 张照片", "{done} / {total} photos checked"),
    "eta": ("预计剩余 {t}", "about {t} left"),
    "eta_unknown": ("剩余时间估算中", "estimating the time left"),
    "rate": ("{r} 张/秒", "{r} photos/s"),
    "started": ("发起", "Started"),
    "finished": ("完成", "Finished"),
    "confirmed_run": ("确认", "Confirmed"),
    "by": ("由 {who}", "by {who}"),
    "pause": ("暂停", "Pause"),
    "resume": ("继续", "Resume"),
    "confirm_run": ("确认采用新结果", "Confirm the new verdicts"),
    "confirm_note": ("确认后，待重拍清单和进度排名改用本次复核的结果（结果有变化的农户 {n} 户）。",
                     "Once confirmed, retake lists and the progress ranking use this run's "
                     "verdicts ({n} households change)."),
    "applied": ("已采用 {a} 张照片的新结果；"
                "{s} 张照片在复核后又有变化（如同一房屋比对），保留现结果。",
                "New verdicts applied to {a} photos; {s} photos changed after they were "
                "re-checked (a scene check), their verdict was kept."),
    "changes": ("结果变化的农户", "Households whose verdict changed"),
    "failed_photos": ("{n} 张照片复核时读取或检查失败（已重试），保留原结果，列在下表；"
                      "可再发起一次复核重试。",
                      "{n} photos could not be read or checked (tried again), their verdict "
                      "is kept; listed below; a new re-check tries them again."),
    "change_type": ("变化", "Change"),
    "old": ("原结果", "Old"),
    "new": ("新结果", "New"),
    "added": ("新增原因", "Reasons added"),
    "removed": ("去掉的原因", "Reasons removed"),
    "why": ("新结果说明", "New reasons"),
    "no_changes": ("没有农户的结果发生变化。", "No household's verdict changed."),
    "more_changes": ("另有 {n} 户，见 XLSX 下载。", "{n} more households: see the XLSX download."),
    "earlier_runs": ("历次复核", "Runs"),
    "recheck_checks": ("复核内容：每张照片的各项检查"
                       "（清晰度、亮度、房屋识别、倾斜、定位、拍摄时间、编辑痕迹等）"
                       "按新政策重新判定；上传时已发现的重复照片 / 同一房屋结论沿用，不重新比对。",
                       "What is re-checked: every per-photo check (sharpness, exposure, house, "
                       "tilt, GPS, capture time, editing) under the new policy; duplicate / "
                       "same-house findings made at upload are kept, not searched again."),
}  # fmt: skip


class _Lang:
    def __init__(self, lang: str) -> None:
        self.lang = lang

    def __call__(self, key: str, **kw: Any) -> str:
        zh, en = TEXT.get(key, (key, key))
        return (en if self.lang == "en" else zh).format(**kw)


def check_csrf(request: Request, csrf: str) -> None:
    if not request.cookies.get(COOKIE) or not hmac.compare_digest(csrf, _csrf(request)):
        raise ApiError(
            403,
            "CSRF_FAILED",
            "the form is stale or did not come from this page; reload the page and try again",
            message_zh="表单已过期或并非来自本页面，请刷新页面后重试",
        )


def _page_user(request: Request, state: State, session: Session) -> User:
    """The logged-in county or town official, or a redirect to the login form."""
    try:
        user = user_for_token(state, session, request.cookies.get(COOKIE))
    except ApiError:
        user = None
    if user is None:
        target = quote(
            str(request.url.path) + ("?" + request.url.query if request.url.query else "")
        )
        raise ApiError(303, "LOGIN_REQUIRED", "log in first",
                       headers={"Location": f"/audit/login?next={target}"})  # fmt: skip
    finding_scope(user)  # village accounts: 403
    return user


def _render(request: Request, name: str, user: User | None, **ctx: Any) -> HTMLResponse:
    lang = _lang(request)
    response = templates.TemplateResponse(
        request,
        name,
        {"t": _Lang(lang), "lang": lang, "user": user, "csrf": _csrf(request), **ctx},
    )
    if request.query_params.get("lang") in ("zh", "en"):
        response.set_cookie(LANG_COOKIE, lang, samesite="lax", max_age=365 * 86400)
    return response


def error_page(request: Request, exc: ApiError) -> HTMLResponse:
    """An error of an /audit page as a page (a village account's 403 included), in the
    page's language: the browser user never sees raw JSON."""
    message = exc.message if _lang(request) == "en" else exc.message_zh
    response = _render(request, "audit_error.html", None, code=exc.code, message=message)
    response.status_code = exc.status
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/audit") -> HTMLResponse:
    return _render(request, "audit_login.html", None, next=next, error=None)


@router.post("/login", response_model=None)
async def login_submit(
    request: Request,
    username: Annotated[str, Form()],
    password: Annotated[str, Form(max_length=1000)],
    next: Annotated[str, Form()] = "/audit",
) -> Response:
    """The API's own login (same delays and limits), its token kept in a cookie."""
    state = get_state(request)
    try:
        token = await auth.log_in(state, auth.client_address(request), username, password)
    except ApiError as exc:
        said = exc.message if _lang(request) == "en" else exc.message_zh or exc.message
        error = "bad_login" if exc.status == 401 else said
        return _render(request, "audit_login.html", None, next=next, error=error)
    if token.must_change_password:
        return _render(request, "audit_login.html", None, next=next, error="change_pw")
    safe_next = next if next.startswith("/audit") else "/audit"
    response = RedirectResponse(safe_next, status_code=303)
    response.set_cookie(COOKIE, token.access_token, httponly=True, samesite="lax",
                        max_age=state.settings.TOKEN_MINUTES * 60)  # fmt: skip
    return response


@router.post("/logout")
async def logout(request: Request, csrf: Annotated[str, Form()] = "") -> RedirectResponse:
    """End the browser session (the form's CSRF token is checked: no forced logout)."""
    if request.cookies.get(COOKIE):
        check_csrf(request, csrf)
    response = RedirectResponse("/audit/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


def _areas(session: Session, county_id: int, town_id: int | None) -> tuple[list, list]:
    every = session.scalars(select(Town).where(Town.county_id == county_id).order_by(Town.name))
    towns = [t for t in every if town_id is None or t.id == town_id]
    ids = [t.id for t in towns]
    villages = session.scalars(
        select(Village).where(Village.town_id.in_(ids)).order_by(Village.name)
    ).all()
    return towns, list(villages)


@router.get("", response_class=HTMLResponse)
def findings_page(
    request: Request,
    state: State,
    session: SessionDep,
    town: DbIdFilter = None,
    village: DbIdFilter = None,
    kind: FindingKind | None = None,
    status: FindingStatus | None = None,
    date: dt.date | None = None,
    limit: Annotated[int, Query(ge=1, le=2000)] = 500,
    offset: Annotated[int, Query(ge=0, le=MAX_DB_ID)] = 0,
) -> HTMLResponse:
    user = _page_user(request, state, session)
    county_id, own_town = finding_scope(user)
    started = time.perf_counter()
    total, rows = query_findings(
        session,
        county_id,
        town_id=own_town or town,
        village_id=village,
        kind=kind.value if kind else None,
        status=status.value if status else None,
        day=date,
        limit=limit,
        offset=offset,
    )
    towns, villages = _areas(session, county_id, own_town)
    vnames = {v.id: v.name for v in villages}
    tnames = {t.id: t.name for t in towns}
    if own_town is not None:  # a cross-town finding names the other town's villages too
        vnames = {v.id: v.name for v in _areas(session, county_id, None)[1]}
    earlier = _earlier_statuses(session, rows)
    params = {k: v for k, v in request.query_params.items() if k not in ("offset", "lang")}
    response = _render(
        request,
        "audit_findings.html",
        user,
        rows=rows,
        total=total,
        towns=towns,
        villages=villages,
        vnames=vnames,
        tnames=tnames,
        earlier=earlier,
        status=_status_view(state, session, county_id),
        can_refresh=user.role == Role.COUNTY,
        queued=request.query_params.get("queued") == "1",
        kinds=[(k.value, KIND_LABELS[k]) for k in FindingKind],
        kind_label={k.value: KIND_LABELS[k] for k in FindingKind},
        statuses=[s.value for s in FindingStatus],
        f={"town": town, "village": village, "kind": kind.value if kind else "",
           "status": status.value if status else "", "date": date.isoformat() if date else ""},
        prev_url="?" + urlencode({**params, "offset": max(0, offset - limit)}) if offset else None,
        next_url="?" + urlencode({**params, "offset": offset + limit})
        if offset + limit < total
        else None,
    )  # fmt: skip
    response.headers["Server-Timing"] = f"render;dur={(time.perf_counter() - started) * 1000:.1f}"
    return response


def _earlier_statuses(session: Session, rows: list[AuditFindingRow]) -> dict[str, str]:
    """finding ID -> the status of the earlier decided finding it grew from."""
    ids = {i for r in rows for i in (r.earlier_ids or ())}
    if not ids:
        return {}
    status = dict(
        session.execute(
            select(AuditFindingRow.id, AuditFindingRow.status).where(AuditFindingRow.id.in_(ids))
        ).all()
    )
    return {
        r.id: status[r.earlier_ids[0]] for r in rows if r.earlier_ids and r.earlier_ids[0] in status
    }


def _status_view(state: State, session: Session, county_id: int) -> dict[str, Any]:
    s = status_json(state, session, county_id)
    at = dt.datetime.fromisoformat(s["computed_at"]) if s["computed_at"] else None
    when = None
    if at is not None:  # HH:MM today, with the date on other days
        at = at.astimezone(CHINA_TZ)
        today = dt.datetime.now(CHINA_TZ).date() == at.date()
        when = at.strftime("%H:%M" if today else "%Y-%m-%d %H:%M")
    return {**s, "when": when}


@router.post("/refresh", response_model=None)
def refresh_submit(
    request: Request, state: State, session: SessionDep, csrf: Annotated[str, Form()] = ""
) -> Response:
    """A county official's "update now": queued for the worker; the page never waits."""
    user = _page_user(request, state, session)
    check_csrf(request, csrf)
    if user.role != Role.COUNTY:
        raise ApiError(
            403,
            "FORBIDDEN",
            "an update is started by a county account",
            message_zh="只有县级账号可以更新核查结果",
        )
    if state.audit is not None:
        state.audit.request(user.county_id)
    return RedirectResponse("/audit?queued=1", status_code=303)


def _beijing(iso: str) -> str:
    return dt.datetime.fromisoformat(iso).astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S")


def _photo_view(session: Session, photo: Photo, lang: str) -> dict[str, Any]:
    hh: Household = photo.household
    exif = photo.exif or {}
    ct = exif.get("capture_time") or {}
    camera = " ".join(x for x in (exif.get("make"), exif.get("model")) if x)
    reasons = [
        (r.get("message_en") if lang == "en" else r.get("message_zh")) or r.get("code")
        for r in (photo.reasons or [])
        if isinstance(r, dict)
    ]
    uploader = session.get(User, photo.uploaded_by)
    return {
        "id": photo.id,
        "household": hh.household_code,
        "head": hh.head_name,
        "village": hh.village.name,
        "town": hh.village.town.name,
        "verifier": uploader.username if uploader else "?",
        "taken": (ct.get("local") or "").replace("T", " ") if isinstance(ct, dict) else "",
        "uploaded": photo.uploaded_at.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S"),
        "gps": f"{photo.gps_lat:.5f}, {photo.gps_lon:.5f}" if photo.gps_lat is not None else "",
        "camera": camera,
        "verdict": _say(photo.verdict, lang),
        "reasons": reasons,
        "lat": photo.gps_lat,
        "lon": photo.gps_lon,
    }


@router.get("/findings/{finding_id}", response_class=HTMLResponse)
def finding_page(request: Request, state: State, session: SessionDep, finding_id: str):
    user = _page_user(request, state, session)
    row = session.get(AuditFindingRow, finding_id)
    if row is None or not visible(session, row, user):
        raise ApiError(
            404,
            "FINDING_NOT_FOUND",
            f"no finding {finding_id!r} in your area",
            message_zh=f"你的管辖范围内没有核查线索 {finding_id}",
        )
    lang = _lang(request)
    photos = [p for p in (session.get(Photo, pid) for pid in row.photo_ids[:12]) if p]
    views = [_photo_view(session, p, lang) for p in photos]
    village = session.get(Village, row.village_id) if row.village_id else None
    centre = (
        (village.centre_lat, village.centre_lon)
        if village and village.centre_lat is not None and village.centre_lon is not None
        else None
    )
    points = [SketchPoint(v["lat"], v["lon"], f"{i + 1}. {v['household']}")
              for i, v in enumerate(views) if v["lat"] is not None]  # fmt: skip
    sketch = position_sketch(points, centre, centre_label=_Lang(lang)("centre"))
    households = {p.id: p.household.household_code for p in photos}
    return _render(
        request,
        "audit_finding.html",
        user,
        row=row,
        can_decide=user.role == Role.COUNTY,
        label=KIND_LABELS[FindingKind(row.kind)],
        photos=views,
        sketch=Markup(sketch) if points or centre else None,
        has_points=bool(points),
        events=[{**e, "at": _beijing(e["at"])} for e in events_json(session, row.id)],
        earlier=[_earlier_view(session, row, e) for e in earlier_findings(session, row)],
        evidence=_evidence_lines(row.evidence, lang, households),
        match_pictures=_match_pictures(row.evidence, lang, households),
    )


def _match_pictures(
    evidence: dict[str, Any], lang: str, households: dict[int, str]
) -> list[dict[str, Any]]:
    """The same-scene pairs whose verified points can be drawn, with a caption."""
    out = []
    for pair in evidence.get("pairs") or []:
        ev = pair.get("evidence") or {}
        if pair.get("relation") != "same_scene" or not has_match_points(ev):
            continue
        a, b = int(pair["a"]), int(pair["b"])
        zh, en = match_caption(str(households.get(a, a)), str(households.get(b, b)), ev)
        url = f"/audit/matches/{a}/{b}/picture"
        out.append({"url": url, "caption": en if lang == "en" else zh})
    return out


def _earlier_view(session: Session, row: AuditFindingRow, e: AuditFindingRow) -> dict[str, Any]:
    new = [h for h in row.household_codes if h not in e.household_codes]
    return {
        "id": e.id,
        "status": e.status,
        "note": e.note,
        "n": len(e.photo_ids),
        "households": ", ".join(e.household_codes),
        "new": ", ".join(new) or "—",
        "events": [{**x, "at": _beijing(x["at"])} for x in events_json(session, e.id)],
    }


EVIDENCE: dict[str, tuple[str, str]] = {
    "relation": ("关系", "relation"),
    "households": ("涉及户数", "households"),
    "photos": ("照片数", "photos"),
    "centre": ("集中拍摄地点", "spot"),
    "radius_m": ("范围半径（米）", "radius (m)"),
    "first": ("最早拍摄", "first taken"),
    "last": ("最晚拍摄", "last taken"),
    "minutes": ("时间跨度（分钟）", "span (minutes)"),
    "verifiers": ("核验员账号", "verifier accounts"),
    "verifier": ("核验员账号", "verifier account"),
    "distance_m": ("距离（米）", "distance (m)"),
    "seconds": ("间隔（秒）", "interval (s)"),
    "speed_kmh": ("速度（公里/小时）", "speed (km/h)"),
    "from": ("前一户", "from"),
    "to": ("后一户", "to"),
    "max_gap_seconds": ("连续间隔上限（秒）", "max gap (s)"),
    "taken_at": ("拍摄时间", "taken"),
    "campaign_start": ("核验开始", "campaign start"),
    "campaign_end": ("核验结束", "campaign end"),
    "correlation": ("缩略图相似度（0–1）", "thumbnail similarity (0-1)"),
    "mean_abs_diff": ("缩略图差异", "thumbnail difference"),
    "device_id": ("设备", "device"),
    "position": ("拍摄位置", "position"),
    "village_centre": ("村中心", "village centre"),
    "verdict": ("检查结果", "check result"),
    "reasons": ("原因代码", "reason codes"),
}
VALUES: dict[str, tuple[str, str]] = {
    "same_photo": ("同一张照片（复制、缩放或旋转）", "the same photo (copied, resized or rotated)"),
    "same_scene": ("同一处房屋另拍", "the same house photographed again"),
    "accept": ("通过", "accepted"),
    "review": ("待审核", "in review"),
    "reject": ("需重拍", "retake needed"),
    "failed": ("复核失败", "re-check failed"),
}


VIA: dict[str, tuple[str, str]] = {  # a pair the audit made, not the index
    "identical": ("字节或像素完全相同", "identical bytes or pixels"),
    "another_county": ("都是另一县同一张照片的副本", "both copies of one photo of another county"),
}


def _say(value: Any, lang: str) -> str:
    """A value as the page shows it: never "None" (an unknown is a dash)."""
    if value is None:
        return "—"
    pair = VALUES.get(value) if isinstance(value, str) else None
    return (pair[1] if lang == "en" else pair[0]) if pair else str(value)


def _evidence_lines(
    evidence: dict[str, Any], lang: str, households: dict[int, str]
) -> list[tuple[str, str]]:
    """Evidence as label/value lines a county official can read (photo IDs -> households)."""
    en = lang == "en"
    out = []
    for key, value in evidence.items():
        label = EVIDENCE.get(key, (key, key))[1 if en else 0]
        if key == "pairs":
            for p in value:
                a = households.get(int(p["a"]), p["a"])
                b = households.get(int(p["b"]), p["b"])
                said = _say(p.get("relation"), lang)
                if p.get("distance") is not None:  # a same-scene pair has no hash distance
                    said += f", {'distance' if en else '差异'} {p['distance']}"
                via = (p.get("evidence") or {}).get("via")
                if via in VIA:
                    said += f" ({VIA[via][1 if en else 0]})"
                out.append((f"{a} ↔ {b}", said))
        elif isinstance(value, dict):
            pid = value.get("photo_id")
            who = households.get(int(pid), pid) if pid is not None else ""
            taken = value.get("taken_at")
            when = str(taken).replace("T", " ") if taken is not None else ""
            out.append((label, f"{who} {when}".strip() or "—"))
        elif isinstance(value, list):
            out.append((label, ", ".join(_say(v, lang) for v in value)))
        else:
            out.append((label, _say(value, lang).replace("T", " ")))
    return out


@router.post("/findings/{finding_id}/decision", response_model=None)
def decision_submit(
    request: Request,
    state: State,
    session: SessionDep,
    finding_id: str,
    action: Annotated[str, Form()],
    csrf: Annotated[str, Form()] = "",  # missing: 403 like a wrong one, not 422
    note: Annotated[str, Form()] = "",
) -> Response:
    user = _page_user(request, state, session)
    check_csrf(request, csrf)
    require_decider(user)
    with state.db.write() as write:
        row = write.get(AuditFindingRow, finding_id)
        if row is None or not visible(write, row, user):
            raise ApiError(
                404,
                "FINDING_NOT_FOUND",
                f"no finding {finding_id!r} in your area",
                message_zh=f"你的管辖范围内没有核查线索 {finding_id}",
            )
        try:
            decide_finding(write, row, user.id, action, note)
        except DecisionError as exc:
            write.rollback()
            session.expire_all()
            response = finding_page(request, state, session, finding_id)
            response.status_code = 422
            response.headers["X-Decision-Error"] = quote(str(exc))
            return response
    return RedirectResponse(f"/audit/findings/{finding_id}", status_code=303)


@router.get("/photos/{photo_id}/preview")
def photo_preview(request: Request, state: State, session: SessionDep, photo_id: DbId):
    user = _page_user(request, state, session)
    preview = preview_bytes(state, photo_visible(session, photo_id, user))
    if preview is None:
        raise ApiError(404, "PHOTO_UNREADABLE", "the stored photo cannot be shown")
    return Response(preview, media_type="image/jpeg",
                    headers={"Cache-Control": "private, max-age=86400"})  # fmt: skip


@router.get("/matches/{photo_id}/{other_id}/picture")
def match_picture(
    request: Request, state: State, session: SessionDep, photo_id: DbId, other_id: DbId
):
    """The two photos with the scene check's verified points joined (cached once)."""
    user = _page_user(request, state, session)
    a = photo_visible(session, photo_id, user)
    b = photo_visible(session, other_id, user)
    match = session.scalar(
        select(PhotoMatch).where(
            PhotoMatch.photo_id == a.id,
            PhotoMatch.other_photo_id == b.id,
            PhotoMatch.relation == "same_scene",
        )
    )
    picture = match_picture_bytes(state, match, a, b) if match is not None else None
    if picture is None:
        raise ApiError(404, "MATCH_NOT_FOUND", "no drawable same-scene match of these photos")
    return Response(picture, media_type="image/jpeg",
                    headers={"Cache-Control": "private, max-age=86400"})  # fmt: skip


@router.get("/photos/{photo_id}/full")
def photo_full(request: Request, state: State, session: SessionDep, photo_id: DbId):
    user = _page_user(request, state, session)
    photo = photo_visible(session, photo_id, user)
    media = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp",
             "HEIF": "image/heif"}.get(photo.format or "", "application/octet-stream")  # fmt: skip
    blobs = state.blobs
    return ranged_response(
        request,
        size=photo.size,
        etag=photo.sha256,
        body=lambda start, end: blobs.iter_range(photo.blob_path, start, end),
        media_type=media,
        filename=photo.export_name,
        inline=True,
    )


@router.get("/progress", response_class=HTMLResponse)
def progress_page(request: Request, state: State, session: SessionDep) -> HTMLResponse:
    user = _page_user(request, state, session)
    table = county_progress(session, user.county_id)
    return _render(request, "audit_progress.html", user, table=table,
                   bars=Markup(progress_bars(table.towns)),
                   as_of=table.as_of.astimezone(CHINA_TZ))  # fmt: skip


@router.get("/progress.{ext}")
def progress_download(request: Request, state: State, session: SessionDep, ext: str) -> Response:
    user = _page_user(request, state, session)
    table = county_progress(session, user.county_id)
    stamp = table.as_of.astimezone(CHINA_TZ).strftime("%Y%m%d")
    if ext == "xlsx":
        body, media = progress_xlsx(table), XLSX
    elif ext == "csv":
        body, media = progress_csv(table), "text/csv; charset=utf-8"
    else:
        raise ApiError(
            404,
            "NOT_FOUND",
            "progress is available as .xlsx or .csv",
            message_zh="进度表只有 .xlsx 和 .csv 两种格式",
        )
    name = f"progress-{stamp}.{ext}"
    return Response(body, media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})  # fmt: skip


# -- the look-back re-check (回头看): start, progress, change report, confirm -------------


@router.get("/recheck", response_class=HTMLResponse)
def recheck_page(
    request: Request, state: State, session: SessionDep, run: DbIdFilter = None
) -> HTMLResponse:
    """The latest run (or ``?run=``): progress bar, counts, change report, actions."""
    user = _page_user(request, state, session)
    county_id, own_town = finding_scope(user)
    query = select(RecheckRun).where(RecheckRun.county_id == county_id)
    if own_town is not None:
        query = query.where(RecheckRun.town_id.is_(None) | (RecheckRun.town_id == own_town))
    runs = list(session.scalars(query.order_by(RecheckRun.id.desc()).limit(20)))
    current = visible_run(session, user, run) if run is not None else (runs[0] if runs else None)
    view = recheck_service(state).view(session, current).to_json() if current else None
    changes = scoped_changes(session, user, current) if current is not None else []
    towns, _ = _areas(session, county_id, own_town)
    lang = _lang(request)
    return _render(
        request,
        "audit_recheck.html",
        user,
        run=view,
        runs=[recheck_service(state).view(session, r).to_json() for r in runs],
        changes=[_change_view(c, lang) for c in changes[:1000]],
        more=max(0, len(changes) - 1000),
        towns=towns,
        can_act=user.role == Role.COUNTY,
        busy=any(r.state in ("running", "paused") for r in runs),
        started_at=_beijing(view["started_at"]) if view else None,
        finished_at=_beijing(view["finished_at"]) if view and view["finished_at"] else None,
        confirmed_at=_beijing(view["confirmed_at"]) if view and view["confirmed_at"] else None,
        change_labels=[(k, _say(k.partition("->")[0], lang), _say(k.partition("->")[2], lang), n)
                       for k, n in (view["changes"] if view else {}).items()],
    )  # fmt: skip


def _change_view(change: Change, lang: str) -> dict[str, Any]:
    i = 1 if lang == "en" else 0
    label = "label_en" if lang == "en" else "label_zh"
    message = "message_en" if lang == "en" else "message_zh"
    return {
        "household": change.household_id,
        "head": change.head_name,
        "town": change.town,
        "village": change.village,
        "old": change.old_verdict,
        "new": change.new_verdict,
        "old_label": _say(change.old_verdict, lang),
        "new_label": _say(change.new_verdict, lang),
        "added": [(c, label_json(c)[label]) for c in change.added],
        "removed": [(c, label_json(c)[label]) for c in change.removed],
        "reasons": [r.get(message) or r.get("code") for r in change.new_reasons],
        "i": i,
    }


@router.post("/recheck", response_model=None)
def recheck_start_submit(
    request: Request,
    state: State,
    session: SessionDep,
    csrf: Annotated[str, Form()] = "",
    town: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Start a re-check of the county, or of the town chosen."""
    user = _page_user(request, state, session)
    check_csrf(request, csrf)
    require_county(user)
    town_id = None
    if town:
        number = parse_db_id(town)
        found = session.get(Town, number) if number is not None else None
        if found is None or found.county_id != user.county_id:
            raise ApiError(404, "TOWN_NOT_FOUND", f"no town {town!r} in this county",
                           message_zh=f"本县没有编号为 {town} 的乡镇")  # fmt: skip
        town_id = found.id
    run = start_run(state, user, town_id)
    return RedirectResponse(f"/audit/recheck?run={run.id}", status_code=303)


def _recheck_form(action: str) -> Any:
    def submit(
        request: Request,
        state: State,
        session: SessionDep,
        run_id: DbId,
        csrf: Annotated[str, Form()] = "",
    ) -> Response:
        user = _page_user(request, state, session)
        check_csrf(request, csrf)
        require_county(user)
        visible_run(session, user, run_id)
        act(state, user, run_id, action)
        return RedirectResponse(f"/audit/recheck?run={run_id}", status_code=303)

    submit.__doc__ = f"The page's {action} button."
    return submit


for _action_name in ("pause", "resume", "confirm"):
    router.add_api_route(
        f"/recheck/{{run_id}}/{_action_name}",
        _recheck_form(_action_name),
        methods=["POST"],
        response_model=None,
        name=f"recheck_{_action_name}_submit",
    )


@router.get("/recheck/{run_id}/changes.xlsx")
def recheck_changes_download(
    request: Request, state: State, session: SessionDep, run_id: DbId
) -> Response:
    user = _page_user(request, state, session)
    run = visible_run(session, user, run_id)
    body = changes_xlsx(
        recheck_service(state).view(session, run), scoped_changes(session, user, run)
    )
    name = f"recheck-{run.id}-changes.xlsx"
    return Response(body, media_type=XLSX,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})  # fmt: skip
