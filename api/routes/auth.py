"""Log in, change password, who am I."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import select

from photocheck.store import Town, User, Village
from photocheck.store.models import County, utcnow

from ..deps import AnyUser, SessionDep, State
from ..errors import ApiError
from ..schemas import ChangePassword, Token, UserOut
from ..security import hash_password, make_token, verify_password

router = APIRouter(prefix="/auth", tags=["auth"])

ACCOUNT_LOCK_AFTER = 20  # consecutive failures from anywhere lock the account itself
ACCOUNT_LOCK_MINUTES = 15


def _locked(retry_after: float) -> ApiError:
    seconds = max(1, int(retry_after + 0.999))
    return ApiError(
        429,
        "TOO_MANY_LOGIN_FAILURES",
        f"too many failed logins; try again in {seconds} s",
        message_zh=f"登录失败次数过多，请 {seconds} 秒后再试",
        headers={"Retry-After": str(seconds)},
    )


@router.post("/token", response_model=Token)
def login(
    state: State, request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> Token:
    """OAuth2 password login; failed attempts are limited per username and address."""
    address = request.client.host if request.client else "?"
    username = form.username.strip()
    wait = state.limiter.retry_after(username, address)
    if wait > 0:
        raise _locked(wait)
    with state.db.session() as session:
        user = session.scalar(select(User).where(User.username == username))
        ok = verify_password(form.password, user.password_hash if user else None)
        now = utcnow()
        if user is not None and user.locked_until is not None and user.locked_until > now:
            raise _locked((user.locked_until - now).total_seconds())
    if not ok or user is None:
        state.limiter.failed(username, address)
        if user is not None:
            _count_failure(state, user.id)
        raise ApiError(
            401, "BAD_CREDENTIALS", "wrong username or password", message_zh="用户名或密码错误"
        )
    state.limiter.succeeded(username, address)
    if user.failed_logins:
        with state.db.write() as session:
            session.get(User, user.id).failed_logins = 0  # type: ignore[union-attr]
    minutes = state.settings.TOKEN_MINUTES
    assert state.settings.SECRET_KEY is not None
    return Token(
        access_token=make_token(user.id, state.settings.SECRET_KEY, minutes),
        expires_at=utcnow() + dt.timedelta(minutes=minutes),
        must_change_password=user.must_change_password,
    )


def _count_failure(state: State, user_id: int) -> None:
    with state.db.write() as session:
        user = session.get(User, user_id)
        assert user is not None
        user.failed_logins += 1
        if user.failed_logins >= ACCOUNT_LOCK_AFTER:
            user.locked_until = utcnow() + dt.timedelta(minutes=ACCOUNT_LOCK_MINUTES)
            user.failed_logins = 0


@router.post("/change-password", status_code=204)
def change_password(state: State, user: AnyUser, body: ChangePassword) -> None:
    """Set a new password (required after the first login with an initial password).

    JSON body ``{"old_password": "…", "new_password": "…"}`` with the bearer token; 204.
    """
    if not verify_password(body.old_password, user.password_hash):
        raise ApiError(403, "BAD_CREDENTIALS", "the old password is wrong", message_zh="原密码错误")
    if body.new_password == body.old_password:
        raise ApiError(
            422,
            "INVALID_REQUEST",
            "the new password must differ from the old one",
            message_zh="新密码不能与原密码相同",
        )
    with state.db.write() as session:
        row = session.get(User, user.id)
        assert row is not None
        row.password_hash = hash_password(body.new_password)
        row.must_change_password = False


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
