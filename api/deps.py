"""Dependencies as ``Annotated`` aliases, so routes declare what they need in one word.

Scoping lives here and only here: a route that takes ``ScopedHousehold`` or
``UploadHousehold`` cannot see a household outside the caller's county, town or
village, and ``VillageScope`` filters list queries the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Query, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from photocheck.store import Household, Role, User
from photocheck.store.repo import find_household, find_user_and_household

from .errors import ApiError
from .page_session import page_api_token
from .security import TokenClaims, decode_token
from .state import AppState

__all__ = [
    "MAX_DB_ID",
    "AnyUser",
    "CountyUser",
    "CurrentUser",
    "DbId",
    "DbIdFilter",
    "Scope",
    "ScopedHousehold",
    "SessionDep",
    "State",
    "UploadHousehold",
    "VillageScope",
    "parse_db_id",
    "user_for_token",
]

# Row IDs are 64-bit signed in both databases; a larger number is no ID (422, not an
# OverflowError deep in the driver).
MAX_DB_ID = 2**63 - 1
DbId = Annotated[int, Path(ge=1, le=MAX_DB_ID)]
DbIdFilter = Annotated[int | None, Query(ge=1, le=MAX_DB_ID)]


def parse_db_id(text: str) -> int | None:
    """An ID given as text (``?town=12`` or a name): the number, or None for a name."""
    if text.isascii() and text.isdigit() and len(text) <= 19 and int(text) <= MAX_DB_ID:
        return int(text)
    return None


_oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


async def _bearer(request: Request, bearer: Annotated[str | None, Depends(_oauth2)]) -> str | None:
    """The ``Authorization: Bearer`` token, else a web page's cookie with its CSRF header.

    ``async``: it only reads headers, and FastAPI runs a plain ``def`` dependency in a
    worker thread (a thread hop per request, and GIL hand-overs under load)."""
    return bearer or page_api_token(request)


def get_state(request: Request) -> AppState:
    return request.app.state.photocheck


State = Annotated[AppState, Depends(get_state)]


def get_session(state: State) -> Iterator[Session]:
    with state.db.session() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def _unauthorized(message: str, message_zh: str) -> ApiError:
    return ApiError(
        401,
        "UNAUTHORIZED",
        message,
        message_zh=message_zh,
        headers={"WWW-Authenticate": "Bearer"},
    )


def user_for_token(state: AppState, session: Session, token: str | None) -> User:
    """The account a bearer token (or the /audit cookie) stands for, checked on every
    request: signature, expiry, and the account's token generation (a password change
    or reset revokes every token issued before it)."""
    claims = _claims(state, token)
    return _token_user(claims, session.get(User, claims.user_id))


def _claims(state: AppState, token: str | None) -> TokenClaims:
    if not token:
        raise _unauthorized("log in first (POST /api/v1/auth/token)", "请先登录")
    assert state.settings.SECRET_KEY is not None
    claims = decode_token(token, state.settings.SECRET_KEY)
    if claims is None:
        raise _unauthorized(
            "the token is invalid or has expired; log in again", "登录已失效或已过期，请重新登录"
        )
    return claims


def _token_user(claims: TokenClaims, user: User | None) -> User:
    """The token's account as read now: it must exist and be of the token's generation."""
    if user is None:
        raise _unauthorized("the account no longer exists", "该账号已不存在")
    if claims.generation != user.token_generation:
        raise _unauthorized(
            "the token was revoked: the password was changed or reset since; log in again",
            "密码已修改或重置，此前的登录已失效，请重新登录",
        )
    return user


def get_any_user(
    state: State, session: SessionDep, token: Annotated[str | None, Depends(_bearer)]
) -> User:
    """The caller, even one who still has to change the initial password."""
    return user_for_token(state, session, token)


AnyUser = Annotated[User, Depends(get_any_user)]


def get_current_user(user: AnyUser) -> User:
    if user.must_change_password:
        raise ApiError(
            403,
            "PASSWORD_CHANGE_REQUIRED",
            "change the initial password first (POST /api/v1/auth/change-password)",
            message_zh="请先修改初始密码（POST /api/v1/auth/change-password）",
        )
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def get_county_user(user: CurrentUser) -> User:
    if user.role != Role.COUNTY:
        raise ApiError(
            403,
            "FORBIDDEN",
            "only a county account may do this",
            message_zh="只有县级账号可以进行此操作",
        )
    return user


CountyUser = Annotated[User, Depends(get_county_user)]


@dataclass(frozen=True)
class Scope:
    """What the caller may see: a county, optionally narrowed to a town or a village."""

    county_id: int
    town_id: int | None = None
    village_id: int | None = None

    def covers(self, household: Household) -> bool:
        if household.county_id != self.county_id:
            return False
        if self.village_id is not None:
            return household.village_id == self.village_id
        if self.town_id is not None:
            return household.village.town_id == self.town_id
        return True


def get_scope(user: CurrentUser) -> Scope:
    if user.role == Role.VILLAGE:
        return Scope(user.county_id, user.town_id, user.village_id)
    if user.role == Role.TOWN:
        return Scope(user.county_id, user.town_id)
    return Scope(user.county_id)


VillageScope = Annotated[Scope, Depends(get_scope)]


def get_scoped_household(
    scope: VillageScope,
    session: SessionDep,
    household_id: Annotated[str, Path(max_length=64)],
) -> Household:
    """The household named in the path, if the caller may see it (404 / 403 otherwise)."""
    return _in_scope(scope, find_household(session, scope.county_id, household_id), household_id)


def _in_scope(scope: Scope, household: Household | None, household_id: str) -> Household:
    if household is None:
        raise ApiError(
            404,
            "HOUSEHOLD_NOT_FOUND",
            f"no household {household_id!r} in this county",
            message_zh=f"本县没有农户「{household_id}」",
        )
    if not scope.covers(household):
        raise ApiError(
            403,
            "FORBIDDEN",
            f"household {household_id!r} is not in your area",
            message_zh=f"农户「{household_id}」不在你的管辖范围内",
        )
    return household


ScopedHousehold = Annotated[Household, Depends(get_scoped_household)]


def get_upload_household(user: CurrentUser, household: ScopedHousehold) -> Household:
    """Only the village verifier uploads ("whoever verifies enters and answers for it")."""
    if user.role != Role.VILLAGE:
        raise ApiError(
            403,
            "FORBIDDEN",
            "only the village's verifier account uploads photos",
            message_zh="只有本村核验员账号可以上传照片",
        )
    return household


UploadHousehold = Annotated[Household, Depends(get_upload_household)]


def upload_caller(
    state: AppState, session: Session, token: str | None, household_id: str
) -> tuple[User, Household]:
    """``UploadHousehold``'s chain (caller, password change, scope, household, village
    role: the same checks in the same order, the same errors) with the account and the
    household read in one statement, for the upload routes: every upload pays it."""
    claims = _claims(state, token)
    user, household = find_user_and_household(session, claims.user_id, household_id)
    user = get_current_user(_token_user(claims, user))
    household = _in_scope(get_scope(user), household, household_id)
    return user, get_upload_household(user, household)
