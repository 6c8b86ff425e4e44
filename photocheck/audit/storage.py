"""The audit over the store: tables -> records, findings -> rows, decisions -> trail.

Functions take a SQLAlchemy session and never commit: the caller owns the transaction
(the API writes inside ``Database.write()``). Reading and computing happen outside the
write lock; only the final upsert takes it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..decode import decode
from ..errors import DecodeError
from ..metadata import read_metadata
from ..store.models import Household, Photo, PhotoMatch, Town, User, Village, utcnow
from .engine import AuditConfig, compute_findings
from .findings import AuditFinding
from .records import (
    CHINA_TZ,
    AppCapture,
    HouseholdRecord,
    MatchRecord,
    PhotoRecord,
    ThumbnailCheck,
    VillageRecord,
)
from .tables import AuditEvent, AuditFindingRow, AuditPhotoCheck, FindingStatus
from .thumbnail import compare_thumbnail

__all__ = [
    "ACTIONS",
    "CountyData",
    "DecisionError",
    "RefreshResult",
    "check_new_photos",
    "decide_finding",
    "load_county",
    "load_progress",
    "query_findings",
    "refresh_findings",
]

ACTIONS = {
    "confirm": FindingStatus.CONFIRMED,
    "dismiss": FindingStatus.DISMISSED,
    "reopen": FindingStatus.OPEN,
}


class DecisionError(ValueError):
    """A decision that cannot be recorded (unknown action, missing note)."""


@dataclass
class CountyData:
    photos: list[PhotoRecord] = field(default_factory=list)
    villages: list[VillageRecord] = field(default_factory=list)
    households: list[HouseholdRecord] = field(default_factory=list)
    matches: list[MatchRecord] = field(default_factory=list)
    town_ids: dict[str, int] = field(default_factory=dict)  # village_id -> town id
    blob_paths: dict[str, str] = field(default_factory=dict)  # photo_id -> blob path


def _local(value: Any) -> dt.datetime | None:
    """An ISO time from JSON as naive China local time (aware values are converted)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return t.astimezone(CHINA_TZ).replace(tzinfo=None) if t.tzinfo else t


def _camera(exif: dict[str, Any] | None) -> tuple[float | None, float | None, Any, bool]:
    if not exif:
        return None, None, None, False
    gps = exif.get("gps") or {}
    ct = exif.get("capture_time") or {}
    taken = _local(ct.get("local")) if isinstance(ct, dict) else None
    if taken is not None and isinstance(ct, dict) and ct.get("offset"):
        taken = _local(ct["local"] + ct["offset"]) or taken
    has = bool(exif.get("has_exif")) and bool(exif.get("make") or exif.get("model") or taken)
    return gps.get("lat"), gps.get("lon"), taken, has


def _app(capture: dict[str, Any] | None) -> AppCapture | None:
    """The app's capture JSON. It is sent by the entry app's own camera screen; a
    client may say ``"in_app": false`` (picked from the gallery)."""
    if not capture:
        return None
    return AppCapture(
        in_app=bool(capture.get("in_app", True)),
        lat=capture.get("lat"),
        lon=capture.get("lon"),
        captured_at=_local(capture.get("device_time")),
        device_id=capture.get("device_id"),
    )


def _codes(reasons: Iterable[Any] | None) -> tuple[str, ...]:
    out = []
    for r in reasons or ():
        code = r.get("code") if isinstance(r, dict) else r
        if isinstance(code, str):
            out.append(code)
    return tuple(out)


def load_county(session: Session, county_id: int) -> CountyData:
    """Everything the audit needs about one county, as plain records."""
    data = CountyData()
    for v, t in session.execute(
        select(Village, Town)
        .join(Town, Village.town_id == Town.id)
        .where(Town.county_id == county_id)
    ):
        data.villages.append(VillageRecord(str(v.id), v.name, t.name, v.centre_lat, v.centre_lon))
        data.town_ids[str(v.id)] = t.id
    vmap = {v.village_id: v for v in data.villages}
    rows = session.execute(
        select(Photo, Household, User.username, AuditPhotoCheck)
        .join(Household, Photo.household_id == Household.id)
        .join(User, Photo.uploaded_by == User.id)
        .outerjoin(AuditPhotoCheck, AuditPhotoCheck.photo_id == Photo.id)
        .where(Household.county_id == county_id)
    )
    uploads: dict[int, list[tuple[dt.datetime, str]]] = {}
    for photo, hh, username, check in rows:
        lat, lon, taken, has_camera = _camera(photo.exif)
        if lat is None and photo.gps_lat is not None and not photo.capture:
            lat, lon = photo.gps_lat, photo.gps_lon
        village = vmap.get(str(hh.village_id))
        thumb = None
        if check is not None and check.thumbnail_matches is not None:
            thumb = ThumbnailCheck(
                check.thumbnail_correlation or 0.0,
                check.thumbnail_mad or 0.0,
                check.thumbnail_matches,
            )
        data.photos.append(
            PhotoRecord(
                photo_id=str(photo.id),
                household_id=hh.household_code,
                village_id=str(hh.village_id),
                town=village.town if village else "",
                verifier=username,
                lat=lat,
                lon=lon,
                captured_at=taken,
                uploaded_at=photo.uploaded_at,
                verdict=photo.verdict,
                reasons=_codes(photo.reasons),
                has_camera_metadata=has_camera,
                app=_app(photo.capture),
                thumbnail=thumb,
                is_current=photo.is_current,
                head_name=hh.head_name,
                village_name=village.name if village else "",
            )
        )
        data.blob_paths[str(photo.id)] = photo.blob_path
        uploads.setdefault(hh.id, []).append((photo.uploaded_at, photo.verdict))
    for hh in session.scalars(select(Household).where(Household.county_id == county_id)):
        data.households.append(
            HouseholdRecord(hh.household_code, str(hh.village_id), tuple(uploads.get(hh.id, ())))
        )
    ids = set(data.blob_paths)
    for m in session.scalars(select(PhotoMatch)):
        if str(m.photo_id) in ids:
            data.matches.append(
                MatchRecord(str(m.photo_id), str(m.other_photo_id), m.relation, m.distance,
                            m.evidence)
            )  # fmt: skip
    return data


def load_progress(session: Session, county_id: int) -> CountyData:
    """Only what the progress table needs: villages, households and upload verdicts."""
    data = CountyData()
    for v, t in session.execute(
        select(Village, Town)
        .join(Town, Village.town_id == Town.id)
        .where(Town.county_id == county_id)
    ):
        data.villages.append(VillageRecord(str(v.id), v.name, t.name, v.centre_lat, v.centre_lon))
        data.town_ids[str(v.id)] = t.id
    uploads: dict[int, list[tuple[dt.datetime, str]]] = {}
    for hid, when, verdict in session.execute(
        select(Photo.household_id, Photo.uploaded_at, Photo.verdict)
        .join(Household, Photo.household_id == Household.id)
        .where(Household.county_id == county_id)
    ):
        uploads.setdefault(hid, []).append((when, verdict))
    for hid, code, vid in session.execute(
        select(Household.id, Household.household_code, Household.village_id).where(
            Household.county_id == county_id
        )
    ):
        data.households.append(HouseholdRecord(code, str(vid), tuple(uploads.get(hid, ()))))
    return data


def check_new_photos(
    session: Session,
    county_id: int,
    read_blob: Callable[[str], bytes | None],
    *,
    max_pixels: int = 120_000_000,
) -> int:
    """Compare the EXIF thumbnail of every photo not checked yet; returns how many."""
    new = session.scalars(
        select(Photo)
        .join(Household, Photo.household_id == Household.id)
        .outerjoin(AuditPhotoCheck, AuditPhotoCheck.photo_id == Photo.id)
        .where(Household.county_id == county_id, AuditPhotoCheck.photo_id.is_(None))
    ).all()
    for photo in new:
        result = None
        if (photo.exif or {}).get("has_thumbnail"):
            data = read_blob(photo.blob_path)
            thumb = read_metadata(data).thumbnail if data else None
            if data and thumb:
                try:
                    result = compare_thumbnail(thumb, decode(data, max_pixels=max_pixels))
                except DecodeError:
                    result = None
        session.add(
            AuditPhotoCheck(
                photo_id=photo.id,
                thumbnail_correlation=result.correlation if result else None,
                thumbnail_mad=result.mean_abs_diff if result else None,
                thumbnail_matches=result.matches if result else None,
            )
        )
    return len(new)


@dataclass(frozen=True)
class RefreshResult:
    added: int
    updated: int
    deactivated: int
    total_active: int


def refresh_findings(
    session: Session,
    county_id: int,
    data: CountyData,
    config: AuditConfig,
    findings: Sequence[AuditFinding] | None = None,
) -> RefreshResult:
    """Upsert the county's findings by their stable IDs; decisions are never touched."""
    if findings is None:
        findings = compute_findings(data.photos, data.villages, data.matches, config)
    existing = {
        r.id: r
        for r in session.scalars(
            select(AuditFindingRow).where(AuditFindingRow.county_id == county_id)
        )
    }
    now, added, updated = utcnow(), 0, 0
    for f in findings:
        row = existing.pop(f.id, None)
        if row is None:
            row = AuditFindingRow(id=f.id, county_id=county_id, first_seen=now,
                                  status=FindingStatus.OPEN)  # fmt: skip
            session.add(row)
            added += 1
        else:
            updated += 1
        primary = f.village_ids[0] if f.village_ids else None
        row.kind, row.severity, row.day = f.kind.value, f.severity.value, f.day
        row.village_id = int(primary) if primary else None
        row.town_id = data.town_ids.get(primary) if primary else None
        row.photo_ids = [int(p) for p in f.photo_ids]
        row.household_codes = list(f.household_ids)
        row.village_ids = [int(v) for v in f.village_ids]
        row.summary_zh, row.summary_en = f.summary_zh[:400], f.summary_en[:400]
        row.evidence, row.active, row.last_seen = f.evidence, True, now
    for row in existing.values():
        row.active = False
    return RefreshResult(added, updated, len(existing), len(findings))


def query_findings(
    session: Session,
    county_id: int,
    *,
    town_id: int | None = None,
    village_id: int | None = None,
    kind: str | None = None,
    status: str | None = None,
    day: dt.date | None = None,
    active_only: bool = True,
    limit: int = 200,
    offset: int = 0,
) -> tuple[int, list[AuditFindingRow]]:
    """(total matching, one page), high severity first, then newest day."""
    from sqlalchemy import case, func

    q = select(AuditFindingRow).where(AuditFindingRow.county_id == county_id)
    if active_only:
        q = q.where(AuditFindingRow.active.is_(True))
    for column, value in (
        (AuditFindingRow.town_id, town_id),
        (AuditFindingRow.village_id, village_id),
        (AuditFindingRow.kind, kind),
        (AuditFindingRow.status, status),
        (AuditFindingRow.day, day),
    ):
        if value is not None:
            q = q.where(column == value)
    total = session.scalar(select(func.count()).select_from(q.subquery())) or 0
    order = case({"high": 0, "medium": 1, "low": 2}, value=AuditFindingRow.severity, else_=3)
    page = session.scalars(
        q.order_by(order, AuditFindingRow.day.desc(), AuditFindingRow.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return total, list(page)


def decide_finding(
    session: Session, row: AuditFindingRow, user_id: int, action: str, note: str | None
) -> AuditEvent:
    """Record a decision on the finding and append it to the audit trail.

    :exception DecisionError: unknown action, or a dismissal without a note (whoever
        clears a suspicion must say why).
    """
    if action not in ACTIONS:
        msg = f"action must be one of {', '.join(ACTIONS)}, got {action!r}"
        raise DecisionError(msg)
    note = (note or "").strip() or None
    if action == "dismiss" and note is None:
        msg = "a dismissal needs a note saying why the finding is not a problem"
        raise DecisionError(msg)
    now = utcnow()
    event = AuditEvent(
        finding_id=row.id,
        user_id=user_id,
        action=action,
        status_before=row.status,
        status_after=ACTIONS[action].value,
        note=note,
        at=now,
    )
    row.status, row.note = ACTIONS[action].value, note
    row.decided_by, row.decided_at = user_id, now
    session.add(event)
    return event
