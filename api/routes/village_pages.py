"""The village page at /village: the PC route of the pilots ("先逐户核验采集……然后借助
电脑登录系统完成上传"). Server-rendered like /audit, Chinese first, ``?lang=en``.

The page lists the village's households with their state and the retake list; its
script (``/village/static/village.js``, plain JS, no build step, nothing fetched from
elsewhere) matches a dropped folder through ``POST /api/v1/households/match-files``
and uploads through the one upload API, ``POST /api/v1/households/{id}/photos``,
authenticated by the login cookie plus the CSRF header.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from photocheck.store import Role, User, Village
from photocheck.store.repo import village_households

from ..deps import SessionDep, State, get_state, user_for_token
from ..errors import ApiError
from ..page_session import COOKIE, CSRF_HEADER, LANG_COOKIE, csrf_token, page_lang
from ..schemas import ChangePassword
from ..state import AppState
from . import auth
from .audit_pages import check_csrf, same_origin

router = APIRouter(prefix="/village", include_in_schema=False, dependencies=[Depends(same_origin)])
PACKAGE = Path(__file__).resolve().parent.parent
templates = Jinja2Templates(directory=str(PACKAGE / "templates"))
STATIC = PACKAGE / "static"

TEXT: dict[str, tuple[str, str]] = {
    "title": ("住房安全核验 · 村级照片上传", "Housing safety verification · village upload"),
    "login": ("登录", "Log in"),
    "logout": ("退出", "Log out"),
    "username": ("账号", "Account"),
    "password": ("密码", "Password"),
    "bad_login": ("账号或密码错误", "Wrong account or password"),
    "change_pw": ("首次登录，请设置新密码", "First login: set a new password"),
    "old_pw": ("初始密码", "Initial password"),
    "new_pw": ("新密码（至少 8 位）", "New password (8 characters or more)"),
    "new_pw_2": ("再次输入新密码", "New password again"),
    "pw_differ": ("两次输入的新密码不一致", "The two new passwords differ"),
    "pw_short": ("新密码至少 8 位", "The new password needs 8 characters or more"),
    "set_pw": ("设置密码并登录", "Set the password and log in"),
    "not_village": ("此页面供村（社区）核验员使用；县、乡镇账号请用审计页面 /audit",
                    "This page is for village verifiers; county and town accounts use /audit"),
    "retakes": ("待重拍", "Retakes needed"),
    "no_retakes": ("没有待重拍的农户", "No household needs a retake"),
    "households": ("本村农户", "Households of the village"),
    "household_id": ("农户编号", "Household ID"),
    "head": ("户主", "Head of household"),
    "category": ("类别", "Category"),
    "state": ("状态", "State"),
    "reasons": ("原因", "Reasons"),
    "action": ("上传", "Upload"),
    "no_photo": ("未上传", "No photo"),
    "accept": ("已通过", "Accepted"),
    "review": ("待审核", "In review"),
    "reject": ("需重拍", "Retake needed"),
    "folder": ("批量上传：选择或拖入整个文件夹", "Folder upload: choose or drop a whole folder"),
    "drop": ("将照片文件夹拖到这里", "Drop the folder of photos here"),
    "choose_folder": ("选择文件夹", "Choose a folder"),
    "choose_files": ("选择照片", "Choose photos"),
    "naming": ("照片按户主姓名或农户编号命名，系统据此对应农户；"
               "对应不上或有重名的，请在下表中指定。",
               "Photos are matched to households by the head's name or the household ID in the "
               "file name; for names that match none or several, choose the household below."),
    "file": ("文件", "File"),
    "match": ("对应农户", "Household"),
    "choose": ("— 请选择 —", "— choose —"),
    "skip": ("不上传", "do not upload"),
    "unknown": ("未找到对应农户", "no household has this name"),
    "ambiguous": ("对应多户，请指定", "several households match: choose one"),
    "several_files": ("多个文件对应同一户，请指定", "several files for one household: choose"),
    "matched": ("已自动对应", "matched"),
    "practice": ("模拟录入（只检查，不保存）", "Practice (模拟录入): check only, store nothing"),
    "confirm": ("确认对应并上传", "Confirm the matching and upload"),
    "progress": ("进度", "Progress"),
    "verdict": ("检查结果", "Result"),
    "upload_one": ("上传", "Upload"),
}  # fmt: skip

# what the verifier does next, per verdict (the reasons say what is wrong)
NEXT_STEP: dict[str, tuple[str, str]] = {
    "accept": ("无需操作", "nothing to do"),
    "review": ("照片已保存，县里将审核", "stored; the county will review it"),
    "reject": ("请按原因重拍该户照片后再上传", "retake this household's photo as the reasons say"),
}


class _Lang:
    def __init__(self, lang: str) -> None:
        self.lang = lang

    def __call__(self, key: str) -> str:
        zh, en = TEXT.get(key, (key, key))
        return en if self.lang == "en" else zh


def _render(request: Request, name: str, user: User | None, **ctx: Any) -> HTMLResponse:
    lang = page_lang(request)
    response = templates.TemplateResponse(
        request,
        name,
        {"t": _Lang(lang), "lang": lang, "user": user, "csrf": csrf_token(request),
         "csrf_header": CSRF_HEADER, **ctx},
    )  # fmt: skip
    if request.query_params.get("lang") in ("zh", "en"):
        response.set_cookie(LANG_COOKIE, lang, samesite="lax", max_age=365 * 86400)
    return response


def _page_user(request: Request, state: State, session: Session) -> User:
    """The logged-in village verifier, or a redirect to the login form."""
    try:  # checked like a bearer token: a password change ends the session
        user: User | None = user_for_token(state, session, request.cookies.get(COOKIE))
    except ApiError:
        user = None
    if user is None or user.must_change_password:
        target = quote(str(request.url.path))
        raise ApiError(303, "LOGIN_REQUIRED", "log in first",
                       headers={"Location": f"/village/login?next={target}"})  # fmt: skip
    if user.role != Role.VILLAGE:
        raise ApiError(403, "FORBIDDEN", "this page is for a village verifier account")
    return user


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> HTMLResponse:
    return _render(request, "village_login.html", None, error=None)


@router.post("/login", response_model=None)
async def login_submit(
    request: Request,
    username: Annotated[str, Form()],
    password: Annotated[str, Form(max_length=1000)],
) -> Response:
    """The API's own login (same delays and limits), its token kept in the HttpOnly cookie."""
    state = get_state(request)
    try:
        token = await auth.log_in(state, auth.client_address(request), username, password)
    except ApiError as exc:
        return _render(request, "village_login.html", None, error=_said(request, exc))
    with state.db.session() as session:
        role = session.scalar(select(User.role).where(User.username == username.strip()))
    if role != Role.VILLAGE:  # county and town officials work on /audit
        return _render(request, "village_login.html", None, error="not_village")
    if token.must_change_password:  # first login from the office PC: set a password here
        return _render(request, "village_password.html", None, username=username, error=None)
    return _logged_in(state, token.access_token)


def _logged_in(state: State, access_token: str) -> RedirectResponse:
    response = RedirectResponse("/village", status_code=303)
    response.set_cookie(COOKIE, access_token, httponly=True, samesite="lax",
                        max_age=state.settings.TOKEN_MINUTES * 60)  # fmt: skip
    return response


def _said(request: Request, exc: ApiError) -> str:
    if exc.status == 401:
        return "bad_login"
    return exc.message if page_lang(request) == "en" else exc.message_zh or exc.message


@router.post("/password", response_model=None)
async def password_submit(
    request: Request,
    username: Annotated[str, Form()],
    old_password: Annotated[str, Form(max_length=1000)],
    new_password: Annotated[str, Form(max_length=1000)],
    new_password_2: Annotated[str, Form(max_length=1000)],
) -> Response:
    """The first login's password change, through the API's own login and change."""

    def again(error: str) -> HTMLResponse:
        page = _render(request, "village_password.html", None, username=username, error=error)
        page.status_code = 422
        return page

    if new_password != new_password_2:
        return again("pw_differ")
    try:
        body = ChangePassword(old_password=old_password, new_password=new_password)
    except ValidationError:
        return again("pw_short")
    state = get_state(request)
    address = auth.client_address(request)
    try:
        await auth.log_in(state, address, username, old_password)
        user = await run_in_threadpool(_account, state, username)
        await auth.change_password(request, user, body)  # ends every earlier session
        token = await auth.log_in(state, address, username, new_password)
    except ApiError as exc:
        return again("bad_login" if exc.status in (401, 403) else _said(request, exc))
    return _logged_in(state, token.access_token)


def _account(state: AppState, username: str) -> User:
    """The account the old password just proved."""
    with state.db.session() as session:
        user = session.scalar(select(User).where(User.username == username.strip()))
        assert user is not None
        return user


@router.post("/logout")
def logout(request: Request, csrf: Annotated[str, Form()] = "") -> RedirectResponse:
    """End the session; the form's CSRF token is checked (no logout forced by another site)."""
    if request.cookies.get(COOKIE):
        check_csrf(request, csrf)
    response = RedirectResponse("/village/login", status_code=303)
    response.delete_cookie(COOKIE)
    return response


def _reasons(photo_reasons: list[Any] | None) -> list[dict[str, str]]:
    return [
        {"code": r.get("code", ""), "zh": r.get("message_zh", ""), "en": r.get("message_en", "")}
        for r in (photo_reasons or [])
        if isinstance(r, dict)
    ]


@router.get("", response_class=HTMLResponse)
def village_page(request: Request, state: State, session: SessionDep) -> HTMLResponse:
    user = _page_user(request, state, session)
    assert user.village_id is not None
    village = session.get(Village, user.village_id)
    rows = []
    for h, p in village_households(session, user.village_id):
        rows.append({
            "id": h.household_code,
            "head": h.head_name,
            "category": h.category,
            "state": p.verdict if p is not None else "no_photo",
            "reasons": _reasons(p.reasons) if p is not None else [],
        })  # fmt: skip
    return _render(
        request,
        "village.html",
        user,
        village=village,
        rows=rows,
        retakes=[r for r in rows if r["state"] == "reject"],
        next_step=NEXT_STEP,
    )


@router.get("/static/{name}")
def static_asset(name: str) -> FileResponse:
    """The page's script and style, from the installed package (works offline)."""
    path = STATIC / name
    if "/" in name or name.startswith(".") or not path.is_file():
        raise ApiError(404, "NOT_FOUND", "no such file")
    media = {".js": "text/javascript", ".css": "text/css"}.get(path.suffix, "text/plain")
    return FileResponse(path, media_type=f"{media}; charset=utf-8",
                        headers={"Cache-Control": "no-cache"})  # fmt: skip
