"""Accounts managed by the county: town readers and password resets."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field
from sqlalchemy import select

from photocheck.store import County, Role, Town, User, Village

from ..deps import CountyUser, State
from ..errors import ApiError
from ..login_limits import clear_failures
from ..schemas import AccountSlip

router = APIRouter(prefix="/users", tags=["users"])


class TownAccountIn(BaseModel):
    username: str = Field(min_length=2, max_length=100)
    town: str


@router.post("/town", response_model=AccountSlip, status_code=201)
def create_town_account(state: State, user: CountyUser, body: TownAccountIn) -> AccountSlip:
    """A read-only account for a town (its villages' households and retakes)."""
    clear, hashed = state.passwords.hashing.new_password()
    with state.db.write() as session:
        town = session.scalar(
            select(Town).where(Town.county_id == user.county_id, Town.name == body.town)
        )
        if town is None:
            raise ApiError(
                404,
                "TOWN_NOT_FOUND",
                f"no town {body.town!r} in this county",
                message_zh=f"本县没有乡镇「{body.town}」",
            )
        if session.scalar(select(User.id).where(User.username == body.username)) is not None:
            raise ApiError(
                409,
                "USERNAME_TAKEN",
                f"username {body.username!r} is taken",
                message_zh=f"用户名「{body.username}」已被占用",
            )
        session.add(
            User(
                username=body.username,
                password_hash=hashed,
                role=Role.TOWN,
                county_id=user.county_id,
                town_id=town.id,
                must_change_password=True,
            )
        )
        county = session.get(County, user.county_id)
        assert county is not None
        return AccountSlip(
            username=body.username, password=clear, county=county.name, town=town.name, village=""
        )


@router.post("/{username}/reset-password", response_model=AccountSlip)
def reset_password(
    state: State, user: CountyUser, username: Annotated[str, Path(max_length=100)]
) -> AccountSlip:
    """A new initial password for an account of this county (answered once). Every
    token issued to the account before stops working; its login delays are cleared."""
    clear, hashed = state.passwords.hashing.new_password()
    with state.db.write() as session:
        target = session.scalar(
            select(User).where(User.username == username, User.county_id == user.county_id)
        )
        if target is None:
            raise ApiError(
                404,
                "USER_NOT_FOUND",
                f"no account {username!r} in this county",
                message_zh=f"本县没有账号「{username}」",
            )
        target.password_hash, target.must_change_password = hashed, True
        target.token_generation += 1  # the stolen phone's token dies now
        clear_failures(session, target.username)  # and its owner is not kept waiting
        county = session.get(County, target.county_id)
        town = session.get(Town, target.town_id) if target.town_id else None
        village = session.get(Village, target.village_id) if target.village_id else None
        return AccountSlip(
            username=target.username,
            password=clear,
            county=county.name if county else "",
            town=town.name if town else "",
            village=village.name if village else "",
        )
