"""Accounts made outside HTTP: ``photocheck user add`` creates the first county account."""

from __future__ import annotations

from sqlalchemy import select

from photocheck.store import County, Database, Role, Town, User
from photocheck.store.repo import get_or_create_county

from .migrate import upgrade
from .security import MIN_PASSWORD_LENGTH
from .settings import Settings

__all__ = ["AccountError", "add_user"]


class AccountError(Exception):
    """The account cannot be created as asked."""


def add_user(
    settings: Settings,
    username: str,
    password: str,
    *,
    role: Role,
    county: str | None = None,
    town: str | None = None,
) -> str:
    """Create a county (or town) account; returns a one-line description.

    :exception AccountError: bad name/password, unknown town, taken username.
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        msg = f"the password needs at least {MIN_PASSWORD_LENGTH} characters"
        raise AccountError(msg)
    if role == Role.VILLAGE:
        msg = "village accounts are made by the household import"
        raise AccountError(msg)
    settings.prepare()
    db = Database(settings.database_url)
    try:
        upgrade(db.engine)
        with db.write() as session:
            if session.scalar(select(User.id).where(User.username == username)) is not None:
                msg = f"username {username!r} is taken"
                raise AccountError(msg)
            if county is None:
                counties = list(session.scalars(select(County)))
                if len(counties) != 1:
                    msg = "give --county NAME (the county this account belongs to)"
                    raise AccountError(msg)
                row = counties[0]
            else:
                row = get_or_create_county(session, county)
            town_id = None
            if role == Role.TOWN:
                found = session.scalar(
                    select(Town).where(Town.county_id == row.id, Town.name == (town or ""))
                )
                if found is None:
                    msg = f"no town {town!r} in {row.name} (import households first)"
                    raise AccountError(msg)
                town_id = found.id
            session.add(
                User(
                    username=username,
                    password_hash=settings.password_hashing().hash(password),
                    role=role,
                    county_id=row.id,
                    town_id=town_id,
                )
            )
            return f"created {role.value} account {username!r} for {row.name}"
    finally:
        db.dispose()
