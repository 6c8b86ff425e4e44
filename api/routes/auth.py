"""Log in, change password, who am I."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from photocheck.store import Town, User, Village
from photocheck.store.models import County, utcnow

from .. import deps
from ..deps import AnyUser, SessionDep
from ..errors import ApiError
from ..login_limits import (
    ThrottleRules,
    clear_failures,
    hashing_busy,
    login_wait,
    record_failure,
    too_many_attempts,
    too_many_failures,
)
from ..schemas import ChangePassword, Token, UserOut
from ..security import HashingBusy, make_token
from ..state import AppState

router = APIRouter(prefix="/auth", tags=["auth"])

_LIMITS: dict[int | str, dict[str, Any]] = {
    401: {"description": "wrong username or password"},
    422: {"description": "malformed form"},
    429: {"description": "too many attempts or failures from this address (Retry-After)"},
    503: {"description": "busy checking other logins (Retry-After)"},
}


def client_address(request: Request) -> str:
    return request.client.host if request.client else "?"


async def log_in(state: AppState, address: str, username: str, password: str) -> Token:
    """The one login path (API and /audit): address rate, then the (username, address)
    delay, then argon2 on the bounded pool (a dummy hash for unknown usernames)."""
    username = username.strip()
    if "\x00" in username or len(username) > 100:
        raise ApiError(
            422,
            "INVALID_REQUEST",
            "username: at most 100 characters, no NUL",
            message_zh="账号：最多 100 个字符，不能含 NUL 字符",
        )
    wait = state.address_rate.take(address)
    if wait > 0:
        raise too_many_attempts(wait)
    rules = ThrottleRules.from_settings(state.settings)

    def look_up() -> tuple[float, bool, User | None]:
        with state.db.session() as session:
            wait, on_record = login_wait(session, username, address, rules)
            user = session.scalar(select(User).where(User.username == username))
            return wait, on_record, user

    wait, on_record, user = await run_in_threadpool(look_up)
    if wait > 0:
        raise too_many_failures(wait)
    try:
        ok = await state.passwords.verify(password, user.password_hash if user else None)
    except HashingBusy:
        raise hashing_busy() from None
    if not ok or user is None:
        await run_in_threadpool(record_failure, state.db, username, address, rules)
        raise ApiError(
            401, "BAD_CREDENTIALS", "wrong username or password", message_zh="账号或密码错误"
        )
    if on_record:
        await run_in_threadpool(_clear, state, username, address)
    minutes = state.settings.TOKEN_MINUTES
    assert state.settings.SECRET_KEY is not None
    return Token(
        access_token=make_token(user.id, user.token_generation, state.settings.SECRET_KEY, minutes),
        expires_at=utcnow() + dt.timedelta(minutes=minutes),
        must_change_password=user.must_change_password,
    )


def _clear(state: AppState, username: str, address: str | None) -> None:
    with state.db.write() as session:
        clear_failures(session, username, address)


@router.post("/token", response_model=Token, responses=_LIMITS)
async def login(
    request: Request,
    username: Annotated[str, Form()],
    password: Annotated[str, Form(max_length=1000)],
) -> Token:
    """OAuth2 password login (form ``username``, ``password``). Failures slow down per
    username and address (growing delays, never a lock-out)."""
    return await log_in(deps.get_state(request), client_address(request), username, password)


@router.post("/change-password", status_code=204)
async def change_password(request: Request, user: AnyUser, body: ChangePassword) -> None:
    """Set a new password (JSON ``{old_password, new_password}``; required after the
    first login with an initial password). Every token issued before, this one too,
    stops working: log in again with the new password."""
    state = deps.get_state(request)
    try:
        ok = await state.passwords.verify(body.old_password, user.password_hash)
        if ok and body.new_password != body.old_password:
            hashed = await state.passwords.hash(body.new_password)
    except HashingBusy:
        raise hashing_busy() from None
    if not ok:
        raise ApiError(
            403, "BAD_CREDENTIALS", "the old password is wrong", message_zh="原密码不正确"
        )
    if body.new_password == body.old_password:
        raise ApiError(
            422,
            "INVALID_REQUEST",
            "the new password must differ from the old one",
            message_zh="新密码不能与原密码相同",
        )
    await run_in_threadpool(_set_password, state, user.id, hashed)


def _set_password(state: AppState, user_id: int, hashed: str) -> None:
    with state.db.write() as session:
        row = session.get(User, user_id)
        assert row is not None
        row.password_hash = hashed
        row.must_change_password = False
        row.token_generation += 1
        clear_failures(session, row.username)


@router.get("/me", response_model=UserOut)
def me(user: AnyUser, session: SessionDep) -> UserOut:
    """The logged-in account."""
    county = session.get(County, user.county_id)
    town = session.get(Town, user.town_id) if user.town_id else None
    village = session.get(Village, user.village_id) if user.village_id else None
    return UserOut(
        username=user.username,
        role=user.role,
        county=county.name if county else "",
        town=town.name if town else None,
        village=village.name if village else None,
        must_change_password=user.must_change_password,
    )
