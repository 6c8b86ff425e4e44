"""Shared sites and their drone photos: tables and the functions that write them.

A site is registered by the county under its own site ID (``site_code``); households
point to it through ``households.site_code`` (the household import's ``site_id``
column, or ``link_households``). A site photo gets its canonical name once, when it is
stored, and keeps it; its SHA-256 and CRC-32 are stored too, so a village package is
laid out (size, ETag, any byte range) without reading a single photo.

Site photos live in their own blob store (``DATA_DIR/drone``, ``PREFIX/drone`` on S3):
the household photo store's start-up reconcile treats blobs without a ``photos`` row
as orphans.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    bindparam,
    select,
)
from sqlalchemy.orm import Mapped, Session, joinedload, mapped_column, relationship

from ..drone import PackagePhoto, Site, SiteKind, allocate_name
from ..drone.zipstream import CallableSource
from ..fingerprints import Fingerprint
from ..policy import SimilarityPolicy
from ..similarity.engine import StoredHashes, copy_of
from ..similarity.rules import DUPLICATE_SITE_PHOTO
from .blobs import BlobStore
from .models import Base, County, Household, Town, User, Village, utcnow

__all__ = [
    "DUPLICATE_SITE_PHOTO",
    "SharedSite",
    "SitePhoto",
    "SitePhotoMatch",
    "UnknownHouseholds",
    "create_site",
    "find_site",
    "link_households",
    "list_sites",
    "new_site_photo_name",
    "site_households",
    "site_photos",
    "to_site",
    "village_package_photos",
]


class SharedSite(Base):
    """A relocation site, nursing home or public-housing site (table ``sites``)."""

    __tablename__ = "sites"
    __table_args__ = (UniqueConstraint("county_id", "site_code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    county_id: Mapped[int] = mapped_column(ForeignKey("counties.id"), index=True)
    site_code: Mapped[str] = mapped_column(String(64))  # the county's site ID
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))  # SiteKind
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"), index=True)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    town: Mapped[Town] = relationship()
    county: Mapped[County] = relationship()


class SitePhoto(Base):
    """One drone photo of a site, under its canonical name (table ``site_photos``)."""

    __tablename__ = "site_photos"
    __table_args__ = (UniqueConstraint("site_id", "sha256"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    canonical_name: Mapped[str] = mapped_column(String(200), unique=True)
    day: Mapped[dt.date] = mapped_column(Date)  # capture day (local), else upload day
    seq: Mapped[int] = mapped_column(Integer)  # NN: per site and day, from 1
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    crc32: Mapped[int] = mapped_column(BigInteger)  # unsigned 32 bits: not an INTEGER
    size: Mapped[int] = mapped_column("bytes", BigInteger)
    format: Mapped[str | None] = mapped_column(String(10))
    blob_path: Mapped[str] = mapped_column(String(200))  # relative to the drone blob store
    capture_time: Mapped[dt.datetime | None] = mapped_column(DateTime())  # camera-local, naive
    gps_lat: Mapped[float | None] = mapped_column(Float)
    gps_lon: Mapped[float | None] = mapped_column(Float)
    relative_altitude_m: Mapped[float | None] = mapped_column(Float)
    distance_m: Mapped[float | None] = mapped_column(Float)  # from the site's registered point
    verdict: Mapped[str] = mapped_column(String(10))
    reasons: Mapped[list[Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    exif: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    pdq: Mapped[str | None] = mapped_column(String(64))  # hex
    pixel_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    uploaded_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    uploaded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    policy_version: Mapped[str] = mapped_column(String(40))
    model_version: Mapped[str] = mapped_column(String(80))
    site: Mapped[SharedSite] = relationship()
    uploader: Mapped[User] = relationship()


class UnknownHouseholds(LookupError):
    """Household IDs that are not in the county."""

    def __init__(self, codes: Sequence[str]) -> None:
        super().__init__(f"unknown households: {', '.join(codes)}")
        self.codes = list(codes)


def to_site(row: SharedSite) -> Site:
    """The library's view of a site (validates names as file-name parts)."""
    return Site(
        site_id=row.site_code,
        name=row.name,
        kind=SiteKind(row.kind),
        county=row.county.name,
        town=row.town.name,
        lat=row.lat,
        lon=row.lon,
    )


def _sites_query() -> Any:
    return select(SharedSite).options(joinedload(SharedSite.town), joinedload(SharedSite.county))


def find_site(session: Session, county_id: int, site_code: str) -> SharedSite | None:
    return session.scalar(
        _sites_query().where(SharedSite.county_id == county_id, SharedSite.site_code == site_code)
    )


def list_sites(session: Session, county_id: int) -> list[SharedSite]:
    return list(
        session.scalars(
            _sites_query().where(SharedSite.county_id == county_id).order_by(SharedSite.site_code)
        )
    )


def create_site(
    session: Session,
    county: County,
    *,
    site_code: str,
    name: str,
    kind: SiteKind,
    town: str,
    lat: float | None,
    lon: float | None,
) -> SharedSite:
    """Register a site; its town is created if the household import has not yet.

    :exception InvalidSiteName: the site, town or county name cannot be part of a file name.
    :exception ValueError: bad coordinates.
    """
    checked = Site(site_code, name, kind, county.name, town, lat, lon)  # validates
    town_row = session.scalar(select(Town).where(Town.county_id == county.id, Town.name == town))
    if town_row is None:
        town_row = Town(county_id=county.id, name=checked.town)
        session.add(town_row)
        session.flush()
    row = SharedSite(
        county_id=county.id,
        site_code=site_code,
        name=checked.name,
        kind=kind.value,
        town_id=town_row.id,
        lat=lat,
        lon=lon,
    )
    row.town, row.county = town_row, county
    session.add(row)
    session.flush()
    return row


def site_households(session: Session, site: SharedSite) -> list[Household]:
    return list(
        session.scalars(
            select(Household)
            .where(Household.county_id == site.county_id, Household.site_code == site.site_code)
            .order_by(Household.household_code)
        )
    )


def link_households(
    session: Session, site: SharedSite, codes: Iterable[str], *, replace: bool = False
) -> list[Household]:
    """Point the households at this site (a household belongs to one site at most).

    ``replace`` also unlinks the site's households that are not listed.

    :exception UnknownHouseholds: some IDs are not households of the county; nothing changed.
    """
    wanted = list(dict.fromkeys(c.strip() for c in codes if c.strip()))
    found = {
        h.household_code: h
        for h in session.scalars(
            select(Household).where(
                Household.county_id == site.county_id, Household.household_code.in_(wanted)
            )
        )
    }
    missing = [c for c in wanted if c not in found]
    if missing:
        raise UnknownHouseholds(missing)
    if replace:
        for household in site_households(session, site):
            if household.household_code not in found:
                household.site_code = None
    for household in found.values():
        household.site_code = site.site_code
    session.flush()
    return site_households(session, site)


def site_photos(session: Session, site: SharedSite) -> list[SitePhoto]:
    return list(
        session.scalars(
            select(SitePhoto).where(SitePhoto.site_id == site.id).order_by(SitePhoto.canonical_name)
        )
    )


def new_site_photo_name(session: Session, site: SharedSite, day: dt.date, ext: str) -> str:
    """The next canonical name of this site on ``day``; call inside the write lock."""
    count = len(
        session.scalars(
            select(SitePhoto.id).where(SitePhoto.site_id == site.id, SitePhoto.day == day)
        ).all()
    )
    taken = set(session.scalars(select(SitePhoto.canonical_name)))
    lib = to_site(site)
    return allocate_name(
        county=lib.county,
        town=lib.town,
        site_name=lib.name,
        kind=lib.kind,
        day=day,
        taken=taken,
        start=count + 1,
        ext=ext,
    )


def village_package_photos(
    session: Session, village: Village, blobs: BlobStore
) -> list[PackagePhoto]:
    """The stored, not rejected, photos of every site linked to the village's households.

    Each photo lists the village's households linked to its site.
    """
    households = session.scalars(
        select(Household)
        .where(Household.village_id == village.id, Household.site_code.is_not(None))
        .order_by(Household.household_code)
    ).all()
    by_site: dict[str, list[str]] = defaultdict(list)
    for h in households:
        assert h.site_code is not None
        by_site[h.site_code].append(f"{h.household_code} {h.head_name}")
    if not by_site:
        return []
    county_id = village.town.county_id
    sites = session.scalars(
        _sites_query().where(
            SharedSite.county_id == county_id, SharedSite.site_code.in_(list(by_site))
        )
    ).all()
    out: list[PackagePhoto] = []
    for site in sites:
        lib = to_site(site)
        for photo in site_photos(session, site):
            if photo.verdict == "reject":
                continue
            out.append(
                PackagePhoto(
                    name=photo.canonical_name,
                    site=lib,
                    source=_reader(blobs, photo.blob_path),
                    size=photo.size,
                    sha256=photo.sha256,
                    crc32=photo.crc32,
                    capture_time=photo.capture_time,
                    lat=photo.gps_lat,
                    lon=photo.gps_lon,
                    relative_altitude_m=photo.relative_altitude_m,
                    households=tuple(by_site[site.site_code]),
                    added_at=photo.uploaded_at.replace(tzinfo=None),
                )
            )
    return out


def _reader(blobs: BlobStore, relpath: str) -> CallableSource:
    """A zip member streamed from the blob store, by range (resumed downloads read only
    the bytes asked for)."""
    return CallableSource(lambda offset, length: blobs.iter_range(relpath, offset, offset + length))


@dataclass(frozen=True)
class SitePhotoMatch:
    photo: SitePhoto
    distance: int  # PDQ bits; 0 for byte- or pixel-identical
    via: str  # sha256 | pixel_sha256 | pdq


# built once (every house photo's upload runs it): bound parameters, no per-call build
_SITE_HASHES = (
    select(SitePhoto.id, SitePhoto.sha256, SitePhoto.pixel_sha256, SitePhoto.pdq)
    .join(SharedSite)
    .where(
        SharedSite.county_id == bindparam("county"),
        SitePhoto.verdict != "reject",
        SitePhoto.id > bindparam("after"),
    )
)


def _matching_site_photos(
    session: Session, county_id: int, fp: Fingerprint, sim: SimilarityPolicy, *, after: int = 0
) -> list[SitePhotoMatch]:
    """Stored site photos of the county (ids above ``after``) that the duplicate engine
    calls the same photo as ``fp`` (``engine.copy_of``: digests, or PDQ within the copy
    radius).

    A county has a few hundred site photos at most: one query of their hashes (plain
    columns: every house photo's upload asks, and ORM rows cost ~1.5 ms even for none)
    and a linear PDQ scan; only the matches are loaded as rows.
    A stored site photo's hash passed the quality gate when it was stored.
    """
    params = {"county": county_id, "after": after}
    hashes = session.connection().execute(_SITE_HASHES, params).all()
    found: dict[int, tuple[int, str]] = {}
    for photo_id, sha256, pixel_sha256, pdq in hashes:
        stored = StoredHashes(sha256, pixel_sha256, bytes.fromhex(pdq) if pdq else None)
        copy = copy_of(fp, stored, sim)
        if copy is None:
            continue
        exact = copy.evidence.get("exact")
        via = {"bytes": "sha256", "pixels": "pixel_sha256"}.get(exact or "", "pdq")
        found[photo_id] = (0 if exact else (copy.distance or 0), via)
    if not found:
        return []
    rows = session.scalars(
        select(SitePhoto).options(joinedload(SitePhoto.site)).where(SitePhoto.id.in_(found))
    )
    out = [SitePhotoMatch(row, *found[row.id]) for row in rows]
    return sorted(out, key=lambda m: (m.distance, m.photo.id))
