"""Household list import (county) and one household with its photo history."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from photocheck.store import County, ImportRejected, Photo, User, parse_household_file
from photocheck.store.intake import scene_check_status
from photocheck.store.repo import household_photos, import_households

from ..deps import CountyUser, ScopedHousehold, SessionDep, State
from ..errors import ApiError
from ..schemas import AccountSlip, HouseholdOut, ImportOut, PhotoOut

router = APIRouter(prefix="/households", tags=["households"])

MAX_IMPORT_BYTES = 50 * 1024 * 1024


@router.post("/import", response_model=ImportOut)
async def import_file(
    state: State,
    user: CountyUser,
    request: Request,
    slips: Annotated[Literal["csv"] | None, Query()] = None,
) -> ImportOut | Response:
    """Import the household list (CSV UTF-8 or XLSX, as the body or a multipart `file`).

    Nothing is imported if any row is bad. New villages get a verifier account; their
    initial passwords are answered this once (``?slips=csv``: as a printable CSV).
    """
    data, filename = await _read_import_body(request)
    try:
        rows = parse_household_file(data, filename)
    except ImportRejected as exc:
        raise ApiError(
            422,
            "IMPORT_INVALID",
            str(exc),
            message_zh=exc.message_zh,
            details=[e.to_json() for e in exc.errors],
        ) from None

    def store() -> ImportOut:
        with state.db.write() as session:
            county = session.get(County, user.county_id)
            assert county is not None
            result = import_households(session, county, rows, state.passwords.hashing.new_password)
        return ImportOut(
            created=result.created,
            updated=result.updated,
            towns_created=result.towns_created,
            villages_created=result.villages_created,
            accounts=[AccountSlip(**a.__dict__) for a in result.accounts],
        )

    out = await run_in_threadpool(store)
    if slips == "csv":
        return Response(
            slip_sheet(out.accounts),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="accounts.csv"'},
        )
    return out


async def _read_import_body(request: Request) -> tuple[bytes, str]:
    ctype = request.headers.get("content-type", "")
    size = int(request.headers.get("content-length") or 0)
    if size > MAX_IMPORT_BYTES:
        raise ApiError(
            413,
            "PAYLOAD_TOO_LARGE",
            "the household file is too large",
            message_zh="农户名单文件太大",
        )
    if ctype.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=4)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise ApiError(
                422,
                "INVALID_REQUEST",
                "no `file` part in the form",
                message_zh="表单中没有 file 文件",
            )
        data = await upload.read()
        name = upload.filename or ""
        await form.close()
        return data, name
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_IMPORT_BYTES:
            raise ApiError(
                413,
                "PAYLOAD_TOO_LARGE",
                "the household file is too large",
                message_zh="农户名单文件太大",
            )
    name = ".xlsx" if "spreadsheetml" in ctype else ".csv"
    return bytes(body), name


def slip_sheet(accounts: list[AccountSlip]) -> str:
    """One line per village account, UTF-8 with BOM so spreadsheet programs show Chinese."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(["county", "town", "village", "username", "initial_password"])
    for a in accounts:
        writer.writerow([a.county, a.town, a.village, a.username, a.password])
    return out.getvalue()


@router.get("/{household_id}", response_model=HouseholdOut)
def get_household(household: ScopedHousehold, session: SessionDep) -> HouseholdOut:
    """A household with its current photo and every earlier upload."""
    photos = household_photos(session, household.id)
    uploader_ids = {p.uploaded_by for p in photos}
    names = {
        uid: name
        for uid, name in session.execute(
            select(User.id, User.username).where(User.id.in_(uploader_ids))
        )
    }
    history = [photo_out(p, names.get(p.uploaded_by)) for p in photos]
    current = next((h for h in history if h.is_current), None)
    village = household.village
    return HouseholdOut(
        household_id=household.household_code,
        head_name=household.head_name,
        county=village.town.county.name,
        town=village.town.name,
        village=village.name,
        category=household.category,
        site_id=household.site_code,
        lat=household.lat,
        lon=household.lon,
        status=current.verdict if current else "missing",
        current_photo=current,
        history=history,
        scene_check=current.scene_check if current else None,
    )


def photo_out(photo: Photo, uploader: str | None) -> PhotoOut:
    return PhotoOut(
        photo_id=photo.id,
        verdict=photo.verdict,
        reasons=photo.reasons,
        sha256=photo.sha256,
        bytes=photo.size,
        format=photo.format,
        export_name=photo.export_name,
        uploaded_at=photo.uploaded_at,
        uploaded_by=uploader,
        is_current=photo.is_current,
        policy_version=photo.policy_version,
        model_version=photo.model_version,
        scene_check=scene_check_status(photo.scene_checked),
    )
