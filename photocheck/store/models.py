"""The relational schema (SQLAlchemy 2.0 typed ORM), the same on SQLite and PostgreSQL.

Hierarchy county -> town -> village -> household; a household has many photos (its
history) and at most one current photo. Nothing here is ever updated in place except
the "current" pointers and account bookkeeping: photos are append-only.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Base",
    "Category",
    "County",
    "Household",
    "IdempotencyKey",
    "LoginThrottle",
    "Photo",
    "PhotoMatch",
    "Role",
    "Town",
    "User",
    "Village",
    "utcnow",
]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Role(enum.StrEnum):
    COUNTY = "county"
    TOWN = "town"
    VILLAGE = "village"


class Category(enum.StrEnum):
    APPRAISED = "appraised"  # 鉴定安全
    RENOVATED = "renovated"  # 改造安全
    SECURED = "secured"  # 保障安全: relocation site, nursing home or public housing


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC in, aware UTC out: SQLite would hand back naive values otherwise."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            msg = "naive datetime given for a UTC column"
            raise ValueError(msg)
        return value.astimezone(dt.UTC) if value is not None else None

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map: dict[Any, Any] = {  # noqa: RUF012 - SQLAlchemy's declared hook
        dict[str, Any]: JSON,
        list[Any]: JSON,
        dt.datetime: UTCDateTime,
    }


class County(Base):
    __tablename__ = "counties"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)


class Town(Base):
    __tablename__ = "towns"
    __table_args__ = (UniqueConstraint("county_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    county_id: Mapped[int] = mapped_column(ForeignKey("counties.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    county: Mapped[County] = relationship()


class Village(Base):
    __tablename__ = "villages"
    __table_args__ = (UniqueConstraint("town_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    centre_lat: Mapped[float | None] = mapped_column(Float)
    centre_lon: Mapped[float | None] = mapped_column(Float)
    town: Mapped[Town] = relationship()


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(10))  # Role
    county_id: Mapped[int] = mapped_column(ForeignKey("counties.id"), index=True)
    town_id: Mapped[int | None] = mapped_column(ForeignKey("towns.id"))
    village_id: Mapped[int | None] = mapped_column(ForeignKey("villages.id"))
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    # unused since revision 0005 (login_throttle replaced the account lock); kept because
    # dropping a column of a referenced table on SQLite means rebuilding the table
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # every token carries the generation it was issued in; a password change or reset
    # bumps it, so tokens (and /audit cookies) issued before stop working at once
    token_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class LoginThrottle(Base):
    """Failed logins per (username as typed, client address): growing delays, no lock.

    In the database so every server process sees the same count. Unknown usernames get
    rows too (answers must not tell who exists); rows are forgotten after a while.
    """

    __tablename__ = "login_throttle"
    username: Mapped[str] = mapped_column(String(100), primary_key=True)
    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    next_allowed: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Household(Base):
    __tablename__ = "households"
    __table_args__ = (UniqueConstraint("county_id", "household_code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    county_id: Mapped[int] = mapped_column(ForeignKey("counties.id"))
    household_code: Mapped[str] = mapped_column(String(64))  # the import's household_id
    head_name: Mapped[str] = mapped_column(String(100))
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id"), index=True)
    category: Mapped[str] = mapped_column(String(10))  # Category
    site_code: Mapped[str | None] = mapped_column(String(64), index=True)  # shared site
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    current_photo_id: Mapped[int | None] = mapped_column(
        ForeignKey("photos.id", use_alter=True, name="fk_households_current_photo")
    )
    village: Mapped[Village] = relationship()


class Photo(Base):
    """One upload, kept forever; the original bytes live in the blob store."""

    __tablename__ = "photos"
    __table_args__ = (
        # at most one current photo per household, enforced by the database itself
        Index(
            "uq_photos_one_current",
            "household_id",
            unique=True,
            sqlite_where=text("is_current"),
            postgresql_where=text("is_current"),
        ),
        # start-up finds the few photos whose scene check is still owed without
        # scanning every photo (~24 s at 25 M rows otherwise)
        Index(
            "ix_photos_scene_unchecked",
            "id",
            sqlite_where=text("scene_checked = 0"),
            postgresql_where=text("NOT scene_checked"),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column("bytes", Integer)  # "bytes" would shadow the type
    format: Mapped[str | None] = mapped_column(String(10))
    blob_path: Mapped[str] = mapped_column(String(200))  # relative to the data folder
    export_name: Mapped[str] = mapped_column(String(400))
    verdict: Mapped[str] = mapped_column(String(10))
    reasons: Mapped[list[Any]]
    metrics: Mapped[dict[str, Any]]
    exif: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    capture: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the app's capture JSON
    pdq: Mapped[str | None] = mapped_column(String(64))  # hex
    pdq_quality: Mapped[int | None]
    phash: Mapped[str | None] = mapped_column(String(16))  # hex
    pixel_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    scene: Mapped[bytes | None] = mapped_column(LargeBinary)  # serialised SceneFeatures
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)  # float16 content embedding
    gps_lat: Mapped[float | None] = mapped_column(Float)  # where it was taken (EXIF or app)
    gps_lon: Mapped[float | None] = mapped_column(Float)
    uploaded_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    uploaded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    policy_version: Mapped[str] = mapped_column(String(40))
    model_version: Mapped[str] = mapped_column(String(80))
    is_current: Mapped[bool] = mapped_column(Boolean, default=False)
    # False until the same-scene check after the answer has run (store.intake)
    scene_checked: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    household: Mapped[Household] = relationship(foreign_keys=[household_id])


class PhotoMatch(Base):
    """A duplicate finding between an upload and an earlier photo of another household."""

    __tablename__ = "photo_matches"
    id: Mapped[int] = mapped_column(primary_key=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id"), index=True)
    other_photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id"), index=True)
    relation: Mapped[str] = mapped_column(String(12))  # same_photo | same_scene
    distance: Mapped[float | None] = mapped_column(Float)
    evidence: Mapped[dict[str, Any]]


class IdempotencyKey(Base):
    """Insert-first guard: the unique (user_id, key) makes racing retries one upload."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    key: Mapped[str] = mapped_column(String(200))
    request: Mapped[str] = mapped_column(String(200))  # what the key was used for
    status: Mapped[str] = mapped_column(String(10))  # pending | done
    status_code: Mapped[int | None]
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
