"""Shared sites (county): registry, linked households, drone photos, village packages."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, BeforeValidator, Field, WithJsonSchema
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from photocheck.drone import InvalidSiteName, SiteKind, build_package
from photocheck.store import County, Household, Town, Village
from photocheck.store.site_intake import SiteIntake, take_site_photo
from photocheck.store.sites import (
    SharedSite,
    SitePhoto,
    UnknownHouseholds,
    create_site,
    find_site,
    link_households,
    list_sites,
    site_households,
    site_photos,
    to_site,
    village_package_photos,
)

from ..deps import CountyUser, DbId, Scope, SessionDep, State, VillageScope
from ..downloads import ranged_response
from ..errors import ApiError
from ..uploads import looks_like_image, read_upload

router = APIRouter(tags=["drone"])

SiteCode = Annotated[str, Path(min_length=1, max_length=64)]


def _parse_kind(value: object) -> object:
    return SiteKind.parse(value) if isinstance(value, str) else value


# The enum value, or its Chinese or English label (what a county's spreadsheet says).
KindText = Annotated[
    SiteKind,
    BeforeValidator(_parse_kind),
    WithJsonSchema(
        {
            "type": "string",
            "enum": [
                *(k.value for k in SiteKind),
                *(k.label_zh for k in SiteKind),
                *(k.label_en for k in SiteKind),
            ],
            "description": "relocation | nursing_home | public_housing, or 移民搬迁点…",
        }
    ),
]


class SiteIn(BaseModel):
    site_id: str = Field(min_length=1, max_length=64, pattern=r"^[^\s/\\]+$")
    name: str = Field(min_length=1, max_length=200)
    kind: KindText
    town: str = Field(min_length=1, max_length=100)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    households: list[str] = Field(default_factory=list, max_length=100_000)


class SitePatch(BaseModel):
    """Only the fields sent change; ``name`` and ``kind`` cannot be null (422)."""

    name: str = Field(default=None, min_length=1, max_length=200)  # type: ignore[assignment]
    kind: KindText = None  # type: ignore[assignment]
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)


class LinkIn(BaseModel):
    households: list[str] = Field(max_length=100_000)
    replace: bool = False  # also unlink the site's households not listed


def site_json(session: Session, site: SharedSite, scope: Scope | None = None) -> dict[str, Any]:
    """The site as the caller may see it: only the linked households in its scope."""
    households = site_households(session, site)
    if scope is not None:
        households = [h for h in households if scope.covers(h)]
    village_ids = sorted({h.village_id for h in households})
    villages = session.scalars(select(Village).where(Village.id.in_(village_ids))).all()
    kind = SiteKind(site.kind)
    return {
        "site_id": site.site_code,
        "name": site.name,
        "kind": kind.value,
        "kind_zh": kind.label_zh,
        "kind_en": kind.label_en,
        "county": site.county.name,
        "town": site.town.name,
        "lat": site.lat,
        "lon": site.lon,
        "households": [h.household_code for h in households],
        "villages": [{"village_id": v.id, "name": v.name} for v in villages],
        "photos": [photo_json(p) for p in site_photos(session, site)],
    }


def photo_json(p: SitePhoto) -> dict[str, Any]:
    return {
        "photo_id": p.id,
        "name": p.canonical_name,
        "sha256": p.sha256,
        "bytes": p.size,
        "verdict": p.verdict,
        "reasons": p.reasons,
        "capture_time": p.capture_time.isoformat() if p.capture_time else None,
        "lat": p.gps_lat,
        "lon": p.gps_lon,
        "relative_altitude_m": p.relative_altitude_m,
        "distance_m": p.distance_m,
    }


def _get_site(session: Session, county_id: int, site_code: str) -> SharedSite:
    site = find_site(session, county_id, site_code)
    if site is None:
        raise ApiError(
            404,
            "SITE_NOT_FOUND",
            f"no site {site_code!r} in this county",
            message_zh=f"本县没有安置点「{site_code}」",
        )
    return site


def site_in_scope(session: Session, site: SharedSite, scope: Scope) -> bool:
    """A village sees the sites linked to its households; a town those in the town or
    linked to its villages' households; the county all of its own."""
    if site.county_id != scope.county_id:
        return False
    if scope.village_id is None and scope.town_id is None:
        return True
    if scope.village_id is None and site.town_id == scope.town_id:
        return True
    linked = select(Household.id).where(
        Household.county_id == site.county_id, Household.site_code == site.site_code
    )
    if scope.village_id is not None:
        linked = linked.where(Household.village_id == scope.village_id)
    else:
        linked = linked.join(Village).where(Village.town_id == scope.town_id)
    return session.scalar(linked.limit(1)) is not None


def _scoped_site(session: Session, scope: Scope, site_code: str) -> SharedSite:
    site = _get_site(session, scope.county_id, site_code)
    if not site_in_scope(session, site, scope):
        raise ApiError(
            403,
            "FORBIDDEN",
            f"site {site_code!r} is not linked to a household in your area",
            message_zh=f"安置点 {site_code!r} 未关联您辖区内的农户",
        )
    return site


def _link(session: Session, site: SharedSite, codes: list[str], replace: bool) -> None:
    try:
        link_households(session, site, codes, replace=replace)
    except UnknownHouseholds as exc:
        raise ApiError(
            422,
            "UNKNOWN_HOUSEHOLDS",
            str(exc),
            message_zh="本县没有这些农户：" + "、".join(exc.codes),
            details={"households": exc.codes},
        ) from None


@router.post("/sites", status_code=201)
def register_site(state: State, user: CountyUser, body: SiteIn) -> JSONResponse:
    """Register a site (county): ID, name, kind, town, location, linked households."""
    kind = body.kind
    with state.db.write() as session:
        county = session.get(County, user.county_id)
        assert county is not None
        if find_site(session, county.id, body.site_id) is not None:
            raise ApiError(
                409,
                "SITE_EXISTS",
                f"site {body.site_id!r} is already registered",
                message_zh=f"安置点「{body.site_id}」已登记",
            )
        try:
            site = create_site(
                session, county, site_code=body.site_id, name=body.name, kind=kind,
                town=body.town, lat=body.lat, lon=body.lon,
            )  # fmt: skip
        except (InvalidSiteName, ValueError) as exc:
            raise ApiError(422, "INVALID_SITE", str(exc)) from None
        _link(session, site, body.households, replace=False)
        out = site_json(session, site)
    return JSONResponse(out, status_code=201)


@router.get("/sites")
def get_sites(scope: VillageScope, session: SessionDep) -> list[dict[str, Any]]:
    """The sites the caller may see (county: all; town: its own and those of its
    villages' households; village: those of its households), with photos."""
    return [
        site_json(session, s, scope)
        for s in list_sites(session, scope.county_id)
        if site_in_scope(session, s, scope)
    ]


@router.get("/sites/{site_id}")
def get_site(scope: VillageScope, session: SessionDep, site_id: SiteCode) -> dict[str, Any]:
    """One site; 404 if the county has no such site, 403 if it is outside your area."""
    return site_json(session, _scoped_site(session, scope, site_id), scope)


@router.patch("/sites/{site_id}")
def edit_site(state: State, user: CountyUser, site_id: SiteCode, body: SitePatch) -> dict:
    """Change name, kind or location (county). Names already given to photos stay."""
    with state.db.write() as session:
        site = _get_site(session, user.county_id, site_id)
        changes = body.model_dump(exclude_unset=True)
        if "kind" in changes:
            changes["kind"] = SiteKind(changes["kind"]).value
        for key, value in changes.items():
            setattr(site, key, value)
        try:
            to_site(site)  # the edited site must still make valid file names
        except (InvalidSiteName, ValueError) as exc:
            raise ApiError(422, "INVALID_SITE", str(exc)) from None
        session.flush()
        return site_json(session, site)


@router.put("/sites/{site_id}/households")
def set_households(state: State, user: CountyUser, site_id: SiteCode, body: LinkIn) -> dict:
    """Link households to the site (``replace``: exactly these); one site per household."""
    with state.db.write() as session:
        site = _get_site(session, user.county_id, site_id)
        _link(session, site, body.households, body.replace)
        return site_json(session, site)


@router.post("/sites/{site_id}/photos", status_code=201)
async def upload_site_photo(
    state: State, user: CountyUser, site_id: SiteCode, request: Request
) -> JSONResponse:
    """A drone photo of the site (multipart `file`): quality checks, no house framing;
    GPS beyond the policy's ``area.site_radius_m`` or missing is a review reason."""
    with state.db.session() as session:
        site = _get_site(session, user.county_id, site_id)
    parsed = await read_upload(request, state.site_blobs, state.settings.max_upload_bytes)
    try:
        if not looks_like_image(parsed.blob.head()):
            msg = "the file is not an image (JPEG, PNG, HEIC, WebP)"
            raise ApiError(415, "NOT_AN_IMAGE", msg)
        intake = SiteIntake(state.db, state.site_blobs, state.policy, state.model)
        outcome = await run_in_threadpool(take_site_photo, intake, site.id, user.id, parsed.blob)
    finally:
        parsed.blob.discard()  # a no-op once stored
    return JSONResponse(outcome.body, status_code=201 if outcome.created else 200)


@router.get("/sites/{site_id}/photos/{photo_id}/file")
def site_photo_file(
    state: State,
    scope: VillageScope,
    session: SessionDep,
    request: Request,
    site_id: SiteCode,
    photo_id: DbId,
) -> Response:
    """The original bytes under the canonical name (Content-Disposition, RFC 5987),
    streamed from the blob store; Range and ETag (the SHA-256) like the packages. Only
    of a site the caller may see."""
    site = _scoped_site(session, scope, site_id)
    photo = session.get(SitePhoto, photo_id)
    if photo is None or photo.site_id != site.id:
        raise ApiError(
            404,
            "PHOTO_NOT_FOUND",
            f"site {site_id!r} has no photo {photo_id}",
            message_zh=f"安置点「{site_id}」没有照片 {photo_id}",
        )
    blobs = state.site_blobs
    ext = photo.canonical_name.rpartition(".")[2]
    return ranged_response(
        request,
        size=photo.size,
        etag=photo.sha256,
        body=lambda start, end: blobs.iter_range(photo.blob_path, start, end),
        media_type="image/jpeg" if photo.format in (None, "JPEG", "MPO") else "image/*",
        filename=photo.canonical_name,
        ascii_name=f"site-{site.site_code}-photo-{photo.id}.{ext}",
    )


def _village(session: Session, scope: Any, village_id: int) -> Village:
    village = session.get(Village, village_id)
    town = session.get(Town, village.town_id) if village is not None else None
    if village is None or town is None or town.county_id != scope.county_id:
        raise ApiError(
            404,
            "VILLAGE_NOT_FOUND",
            f"no village {village_id} in this county",
            message_zh=f"本县没有编号为 {village_id} 的村",
        )
    if (scope.village_id is not None and scope.village_id != village.id) or (
        scope.town_id is not None and scope.town_id != village.town_id
    ):
        raise ApiError(
            403,
            "FORBIDDEN",
            f"village {village_id} is not in your area",
            message_zh=f"编号为 {village_id} 的村不在你的管辖范围内",
        )
    return village


@router.head("/villages/{village_id}/drone-package", include_in_schema=False)
@router.get("/villages/{village_id}/drone-package")
def drone_package(
    state: State,
    scope: VillageScope,
    session: SessionDep,
    request: Request,
    village_id: DbId,
) -> Response:
    """A zip of the drone photos of every site linked to the village's households, under
    canonical names, with a manifest CSV; streamed, resumable (Range), stable ETag."""
    village = _village(session, scope, village_id)
    photos = village_package_photos(session, village, state.site_blobs)
    if not photos:
        linked = session.scalar(
            select(Household.id).where(
                Household.village_id == village.id, Household.site_code.is_not(None)
            )
        )
        why = "no drone photos yet for its sites" if linked else "no household linked to a site"
        why_zh = "所属安置点还没有航拍照片" if linked else "没有农户关联到安置点"
        raise ApiError(
            404,
            "NO_DRONE_PHOTOS",
            f"village {village.name!r} has {why}",
            message_zh=f"{village.name}{why_zh}",
        )
    layout = build_package(photos)
    town = village.town
    name = f"{town.county.name}_{town.name}_{village.name}_航拍照片.zip"
    return ranged_response(
        request,
        size=layout.size,
        etag=layout.etag,
        body=layout.iter_range,
        media_type="application/zip",
        filename=name,
        ascii_name=f"county-{town.county_id}-town-{town.id}-village-{village.id}-drone-photos.zip",
    )


__all__ = ["router", "site_json"]
