"""The audit over the running service: keep findings fresh, cache previews, scope.

Findings are recomputed only when photos arrived since the last run (every photo gets
an ``audit_photo_checks`` row in a run, so "a photo without one" means "stale"). The
computation reads outside the write lock; only the upsert takes it. One refresh runs
at a time per process.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from photocheck.audit import AuditConfig, SingleThresholds
from photocheck.audit.previews import make_preview
from photocheck.audit.storage import check_new_photos, load_county, refresh_findings
from photocheck.audit.tables import AuditFindingRow, AuditPhotoCheck
from photocheck.store import Household, Photo, Role, User

from .errors import ApiError
from .state import AppState

__all__ = ["PREVIEW_SIZE", "audit_config", "ensure_fresh", "finding_scope", "preview_path"]

PREVIEW_SIZE = 480
_refresh_lock = threading.Lock()


def audit_config(state: AppState) -> AuditConfig:
    m = state.policy.metadata
    radius = state.settings.GPS_RADIUS_M or state.policy.area.gps_radius_m
    return AuditConfig(single=SingleThresholds(m.campaign_start, m.campaign_end, radius))


def _stale(session: Session, county_id: int) -> bool:
    unchecked = (
        select(Photo.id)
        .join(Household, Photo.household_id == Household.id)
        .where(Household.county_id == county_id)
        .where(~exists().where(AuditPhotoCheck.photo_id == Photo.id))
    )
    return session.scalar(select(exists(unchecked))) or False


def ensure_fresh(state: AppState, county_id: int, *, force: bool = False) -> bool:
    """Recompute the county's findings if photos arrived; True when it ran."""
    with _refresh_lock:
        with state.db.session() as session:
            if not force and not _stale(session, county_id):
                return False
        with state.db.write() as session:
            check_new_photos(session, county_id, lambda rel: _read_blob(state, rel),
                             max_pixels=state.policy.quality.max_pixels)  # fmt: skip
        with state.db.session() as session:
            data = load_county(session, county_id)
        from photocheck.audit import compute_findings

        config = audit_config(state)
        findings = compute_findings(data.photos, data.villages, data.matches, config)
        with state.db.write() as session:
            refresh_findings(session, county_id, data, config, findings)
        return True


def _read_blob(state: AppState, relpath: str) -> bytes | None:
    path = state.blobs.root / relpath
    try:
        return path.read_bytes()
    except OSError:
        return None


def finding_scope(user: User) -> tuple[int, int | None]:
    """(county, town or None) the caller may audit; village accounts may not."""
    if user.role == Role.COUNTY:
        return user.county_id, None
    if user.role == Role.TOWN:
        return user.county_id, user.town_id
    raise ApiError(403, "FORBIDDEN", "the audit is for county and town accounts")


def visible(row: AuditFindingRow, user: User) -> bool:
    county, town = finding_scope(user)
    return row.county_id == county and (town is None or row.town_id == town)


def photo_visible(session: Session, photo_id: int, user: User) -> Photo:
    """The photo if the caller's audit scope covers it (404 otherwise: no probing)."""
    county, town = finding_scope(user)
    photo = session.get(Photo, photo_id)
    if (
        photo is None
        or photo.household.county_id != county
        or (town is not None and photo.household.village.town_id != town)
    ):
        raise ApiError(404, "PHOTO_NOT_FOUND", f"no photo {photo_id} in your area")
    return photo


def preview_path(state: AppState, photo: Photo) -> Path | None:
    """A cached upright JPEG preview, made once on first request."""
    folder = state.settings.DATA_DIR / "audit_previews"
    path = folder / f"{photo.id}_{PREVIEW_SIZE}.jpg"
    if path.is_file():
        return path
    data = _read_blob(state, photo.blob_path)
    preview = make_preview(data, size=PREVIEW_SIZE) if data else None
    if preview is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(preview)
    tmp.replace(path)  # atomic: a concurrent request sees all of it or nothing
    return path
