"""Repository functions: the only code that writes the tables.

Callers pass a session (for writes, one from ``Database.write()``) and hashed
passwords; this module knows nothing about HTTP or how passwords are hashed.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, func, insert, select, update
from sqlalchemy.orm import Session, joinedload

from .dupindex import DupEntry, embedding_from_bytes
from .household_import import HouseholdRow
from .models import County, Household, Photo, PhotoMatch, Role, Town, User, Village

__all__ = [
    "ImportResult",
    "NewAccount",
    "dup_entries",
    "export_name",
    "find_household",
    "find_user_and_household",
    "get_or_create_county",
    "household_pair_relations",
    "household_photos",
    "import_households",
    "record_photo",
    "retake_households",
    "village_households",
    "village_username",
]

EXTENSIONS = {
    "JPEG": "jpg",
    "MPO": "jpg",
    "PNG": "png",
    "WEBP": "webp",
    "HEIF": "heic",
    "PPM": "ppm",
}
_UNSAFE = re.compile(r"[\\/:*?\"<>|\x00-\x1f]")


@dataclass(frozen=True)
class NewAccount:
    username: str
    password: str  # shown once, never stored in clear
    county: str
    town: str
    village: str


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int
    towns_created: int
    villages_created: int
    accounts: list[NewAccount]


def get_or_create_county(session: Session, name: str) -> County:
    county = session.scalar(select(County).where(County.name == name))
    if county is None:
        county = County(name=name)
        session.add(county)
        session.flush()
    return county


def village_username(county_id: int, village_id: int) -> str:
    """Short, typeable, unique: the county and village numbers."""
    return f"v{county_id}-{village_id:04d}"


def import_households(
    session: Session,
    county: County,
    rows: Sequence[HouseholdRow],
    new_password: Callable[[], tuple[str, str]],
) -> ImportResult:
    """Create or update households, their towns and villages, and one account per new village.

    ``new_password`` returns (clear text, hash). Existing households (same code in the
    county) are updated; existing villages keep their accounts.
    """
    towns = {t.name: t for t in session.scalars(select(Town).where(Town.county_id == county.id))}
    villages = {
        (v.town.name, v.name): v
        for v in session.scalars(select(Village).join(Town).where(Town.county_id == county.id))
    }
    existing = {
        h.household_code: h
        for h in session.scalars(select(Household).where(Household.county_id == county.id))
    }
    towns_created = villages_created = created = updated = 0
    accounts: list[NewAccount] = []
    for row in rows:
        town = towns.get(row.town)
        if town is None:
            town = towns[row.town] = Town(county_id=county.id, name=row.town)
            session.add(town)
            session.flush()
            towns_created += 1
        village = villages.get((row.town, row.village))
        if village is None:
            village = villages[(row.town, row.village)] = Village(town_id=town.id, name=row.village)
            session.add(village)
            session.flush()
            villages_created += 1
            clear, hashed = new_password()
            username = village_username(county.id, village.id)
            session.add(
                User(
                    username=username,
                    password_hash=hashed,
                    role=Role.VILLAGE,
                    county_id=county.id,
                    town_id=town.id,
                    village_id=village.id,
                    must_change_password=True,
                )
            )
            accounts.append(NewAccount(username, clear, county.name, town.name, village.name))
        fields: dict[str, Any] = {
            "head_name": row.head_name,
            "village_id": village.id,
            "category": row.category.value,
            "site_code": row.site_id,
            "lat": row.lat,
            "lon": row.lon,
        }
        household = existing.get(row.household_id)
        if household is None:
            session.add(Household(county_id=county.id, household_code=row.household_id, **fields))
            created += 1
        elif any(getattr(household, k) != v for k, v in fields.items()):
            for key, value in fields.items():
                setattr(household, key, value)
            updated += 1
    session.flush()
    _update_village_centres(session, county.id)
    return ImportResult(created, updated, towns_created, villages_created, accounts)


def _update_village_centres(session: Session, county_id: int) -> None:
    """A village's centre is the mean of its households' registered points."""
    points: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for vid, lat, lon in session.execute(
        select(Household.village_id, Household.lat, Household.lon).where(
            Household.county_id == county_id, Household.lat.is_not(None)
        )
    ):
        if lat is not None and lon is not None:
            points[vid].append((lat, lon))
    for vid, pts in points.items():
        village = session.get(Village, vid)
        if village is not None:
            village.centre_lat = sum(p[0] for p in pts) / len(pts)
            village.centre_lon = sum(p[1] for p in pts) / len(pts)


def find_household(session: Session, county_id: int, code: str) -> Household | None:
    """A household by its code, with its village, town and county (every upload asks:
    the statement is built once)."""
    return session.scalar(_FIND_HOUSEHOLD, {"county": county_id, "code": code})


_FIND_HOUSEHOLD = (
    select(Household)
    .options(joinedload(Household.village).joinedload(Village.town).joinedload(Town.county))
    .where(
        Household.county_id == bindparam("county"), Household.household_code == bindparam("code")
    )
)


def find_user_and_household(
    session: Session, user_id: int, code: str
) -> tuple[User | None, Household | None]:
    """An account and a household of its county by code (with its village, town and
    county) in one statement: what every upload's authorisation reads."""
    row = session.execute(_FIND_USER_AND_HOUSEHOLD, {"user": user_id, "code": code}).first()
    return (row[0], row[1]) if row is not None else (None, None)


_FIND_USER_AND_HOUSEHOLD = (
    select(User, Household)
    .outerjoin(
        Household,
        and_(Household.county_id == User.county_id, Household.household_code == bindparam("code")),
    )
    .options(joinedload(Household.village).joinedload(Village.town).joinedload(Town.county))
    .where(User.id == bindparam("user"))
)


def export_name(household: Household, fmt: str | None) -> str:
    """``county/town/village/<householdID>_<headname>.<ext>``, safe as a path."""
    village = household.village
    parts = [village.town.county.name, village.town.name, village.name]
    ext = EXTENSIONS.get(fmt or "", "bin")
    leaf = f"{household.household_code}_{household.head_name}.{ext}"
    return "/".join(_UNSAFE.sub("_", p) for p in [*parts, leaf])


def record_photo(
    session: Session,
    household_id: int,
    photo: dict[str, Any],
    matches: Iterable[PhotoMatch],
    current: tuple[int, str] | None,
) -> int:
    """Insert an upload (``photo``: its column values); it becomes current unless it is
    a reject replacing a good photo. ``current``: the household's current photo (id,
    verdict), read in this transaction. Returns the new photo's id.

    Core statements, no ORM unit of work: this runs inside the write lock, where every
    statement's Python cost is paid while the other uploads wait.
    """
    becomes_current = current is None or photo["verdict"] != "reject" or current[1] == "reject"
    conn = session.connection()  # Core on the session's transaction: no ORM bulk machinery
    if becomes_current and current is not None:
        # the one-current unique index sees the old row cleared first
        conn.execute(_NOT_CURRENT, {"old": current[0]})
    columns = {_COLUMN_NAMES[k]: v for k, v in photo.items()}  # size: "bytes"
    columns.update(household_id=household_id, is_current=becomes_current)
    # a prebuilt statement with the values as parameters: ``.values(**columns)`` built
    # a new statement and its cache key per upload (~2 ms of Python inside the lock)
    photo_id: int = conn.execute(_INSERT_PHOTO, columns).scalar_one()
    for match in matches:
        match.photo_id = photo_id
        session.add(match)
    if becomes_current:
        conn.execute(_SET_CURRENT, {"household": household_id, "photo": photo_id})
    return int(photo_id)


_PHOTOS, _HOUSEHOLDS = cast(Table, Photo.__table__), cast(Table, Household.__table__)
_COLUMN_NAMES = {k: c.name for k, c in Photo.__mapper__.columns.items()}
_INSERT_PHOTO = insert(_PHOTOS).returning(_PHOTOS.c.id)
_NOT_CURRENT = update(_PHOTOS).where(_PHOTOS.c.id == bindparam("old")).values(is_current=False)
_SET_CURRENT = (
    update(_HOUSEHOLDS)
    .where(_HOUSEHOLDS.c.id == bindparam("household"))
    .values(current_photo_id=bindparam("photo"))
)


def household_photos(session: Session, household_id: int) -> list[Photo]:
    """Every upload of a household, newest first."""
    return list(
        session.scalars(
            select(Photo)
            .where(Photo.household_id == household_id)
            .order_by(Photo.uploaded_at.desc(), Photo.id.desc())
        )
    )


def retake_households(
    session: Session, county_id: int, *, town_id: int | None = None, village_id: int | None = None
) -> list[tuple[Household, Photo]]:
    """Households whose current photo is rejected, within a county/town/village."""
    stmt = (
        select(Household, Photo)
        .join(Photo, Photo.id == Household.current_photo_id)
        .join(Village, Village.id == Household.village_id)
        .options(joinedload(Household.village).joinedload(Village.town))
        .where(Household.county_id == county_id, Photo.verdict == "reject")
        .order_by(Village.id, Household.household_code)
    )
    if town_id is not None:
        stmt = stmt.where(Village.town_id == town_id)
    if village_id is not None:
        stmt = stmt.where(Household.village_id == village_id)
    return [(h, p) for h, p in session.execute(stmt)]


def village_households(session: Session, village_id: int) -> list[tuple[Household, Photo | None]]:
    """Every household of a village with its current photo (None: no photo yet)."""
    stmt = (
        select(Household, Photo)
        .outerjoin(Photo, Photo.id == Household.current_photo_id)
        .where(Household.village_id == village_id)
        .order_by(Household.household_code)
    )
    return [(h, p) for h, p in session.execute(stmt)]


def dup_entries(session: Session, batch: int = 5000, *, after: int = 0) -> Iterable[DupEntry]:
    """Index entries for every stored photo with an id above ``after`` (rejected ones
    too: reuse is reuse), except copies already found to be another household's photo
    (they would make the original household's own retake look like a duplicate of its
    copy)."""
    copies = select(PhotoMatch.id).where(
        PhotoMatch.photo_id == Photo.id, PhotoMatch.relation == "same_photo"
    )
    stmt = (
        select(
            Photo.id,
            Photo.household_id,
            Household.county_id,
            Household.site_code,
            Photo.pdq,
            Photo.embedding,
            Photo.gps_lat,
            Photo.gps_lon,
            Photo.sha256,
            Photo.pixel_sha256,
        )
        .join(Household, Household.id == Photo.household_id)
        .where(~copies.exists(), Photo.id > after)
        .order_by(Photo.id)
        .execution_options(yield_per=batch)
    )
    for row in session.execute(stmt):
        yield DupEntry(
            photo_id=row.id,
            household_id=row.household_id,
            county_id=row.county_id,
            site_code=row.site_code,
            pdq=bytes.fromhex(row.pdq) if row.pdq else None,
            embedding=embedding_from_bytes(row.embedding) if row.embedding else None,
            lat=row.gps_lat,
            lon=row.gps_lon,
            sha256=row.sha256,
            pixel_sha256=row.pixel_sha256,
        )


def count_photos(session: Session) -> int:
    return int(session.scalar(select(func.count(Photo.id))) or 0)


def household_pair_relations(session: Session) -> dict[frozenset[str], str]:
    """Every stored duplicate finding as {household codes of both photos: relation};
    where a pair has both, same_photo wins (the evaluation scores the stronger one)."""
    code_of: dict[int, str] = {
        photo_id: code
        for photo_id, code in session.execute(
            select(Photo.id, Household.household_code).join(
                Household, Household.id == Photo.household_id
            )
        )
    }
    rows = session.execute(
        select(PhotoMatch.photo_id, PhotoMatch.other_photo_id, PhotoMatch.relation)
    )
    found: dict[frozenset[str], str] = {}
    for a, b, relation in rows:
        key = frozenset((code_of[a], code_of[b]))
        if found.get(key) != "same_photo":
            found[key] = relation
    return found
