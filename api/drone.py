"""Taking in one drone photo of a site: check, name, store (shared by HTTP and the CLI).

The photo checks run with ``check_framing=False`` (an aerial view has no house front)
and the site's point as the expected location, within the policy's
``area.site_radius_m``. A rejected photo (unreadable, blurred, too dark...) is not
stored and takes no number; anything else is stored under its canonical name.
"""

from __future__ import annotations

import datetime as dt
import json
import zlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from photocheck import ContentModel, PhotoContext, Policy, Verdict, check_photo
from photocheck.drone import photo_facts
from photocheck.metadata.gps import haversine_m
from photocheck.similarity.engine import pdq_usable
from photocheck.store import BlobStore, Database, PendingBlob
from photocheck.store.repo import EXTENSIONS
from photocheck.store.sites import SharedSite, SitePhoto, new_site_photo_name

from .errors import ApiError
from .settings import Settings
from .state import AppState
from .uploads import ParsedUpload, looks_like_image

__all__ = ["SiteIntake", "drone_blobs", "store_site_photo", "take_site_photo"]


def drone_blobs(settings: Settings) -> BlobStore:
    """Site photos' own blob store: the household store's reconcile would orphan them."""
    return settings.blob_config().store("drone")


@dataclass(frozen=True)
class SiteIntake:
    """What taking in a site photo needs: the server's state, or the CLI's light one."""

    db: Database
    blobs: BlobStore  # the drone store
    policy: Policy
    model: ContentModel

    @classmethod
    def of(cls, state: AppState) -> SiteIntake:
        return cls(state.db, state.site_blobs, state.policy, state.model)


def store_site_photo(
    state: AppState, site_pk: int, user_id: int, parsed: ParsedUpload
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) for an uploaded file; see ``take_site_photo``."""
    if not looks_like_image(parsed.blob.head()):
        raise ApiError(415, "NOT_AN_IMAGE", "the file is not an image (JPEG, PNG, HEIC, WebP)")
    return take_site_photo(SiteIntake.of(state), site_pk, user_id, parsed.blob)


def take_site_photo(
    intake: SiteIntake, site_pk: int, user_id: int, blob: PendingBlob
) -> tuple[int, dict[str, Any]]:
    """Check and store one site photo. 201 new, 200 the same bytes again (the stored
    answer), 200 with ``stored: false`` for a rejected photo.

    :exception ApiError: 409 when the same photo is registered for another site.
    """
    data = blob.read()
    with intake.db.session() as session:
        site = _site(session, site_pk)
    radius = intake.policy.area.site_radius_m
    context = PhotoContext(
        expected_lat=site.lat, expected_lon=site.lon, radius_m=radius, check_framing=False
    )
    report = check_photo(
        data, policy=intake.policy, model=intake.model, context=context, sha256=blob.sha256
    )
    reasons = [r.to_json() for r in report.reasons]
    answer: dict[str, Any] = {
        "site_id": site.site_code,
        "verdict": report.verdict.value,
        "reasons": reasons,
    }
    if report.verdict is Verdict.REJECT:
        return 200, {**answer, "stored": False, "photo_id": None, "name": None}
    facts = photo_facts(report.metadata)
    distance = None
    if facts.has_location and site.lat is not None and site.lon is not None:
        assert facts.lat is not None and facts.lon is not None
        distance = round(haversine_m(facts.lat, facts.lon, site.lat, site.lon), 1)
    fmt = report.photo.format if report.photo else None
    with intake.db.write() as session:
        site = _site(session, site_pk)
        same = session.scalars(select(SitePhoto).where(SitePhoto.sha256 == blob.sha256)).all()
        for row in same:
            if row.site_id != site.id:
                other = row.site.site_code
                msg = f"this photo is already stored for site {other!r} as {row.canonical_name}"
                zh = f"这张照片已登记在安置点「{other}」，文件名 {row.canonical_name}"
                raise ApiError(409, "PHOTO_OF_OTHER_SITE", msg, message_zh=zh)
            return 200, {**answer, **_stored(row), "stored": True, "existing": True}
        day = (facts.capture_time or dt.datetime.now(intake.policy.metadata.tz)).date()
        name = new_site_photo_name(session, site, day, "." + EXTENSIONS.get(fmt or "", "jpg"))
        fp = report.fingerprint
        row = SitePhoto(
            site_id=site.id,
            canonical_name=name,
            day=day,
            seq=int(name.rsplit("_", 1)[1].split(".")[0]),
            sha256=blob.sha256,
            crc32=zlib.crc32(data),
            size=blob.size,
            format=fmt,
            blob_path=intake.blobs.commit(blob),  # durable before the row exists
            capture_time=facts.capture_time,
            gps_lat=facts.lat,
            gps_lon=facts.lon,
            relative_altitude_m=facts.relative_altitude_m,
            distance_m=distance,
            verdict=report.verdict.value,
            reasons=reasons,
            metrics=_plain(report.metrics),
            exif=_plain(report.metadata.to_json()) if report.metadata else None,
            # only a hash past the quality gate is kept (the engine trusts stored ones)
            pdq=fp.pdq.hex() if fp.pdq and pdq_usable(fp, intake.policy.similarity) else None,
            pixel_sha256=fp.pixel_sha256,
            uploaded_by=user_id,
            policy_version=report.policy_version,
            model_version=report.model_version,
        )
        session.add(row)
        session.flush()
        return 201, {**answer, **_stored(row), "stored": True, "existing": False}


def _site(session: Any, site_pk: int) -> SharedSite:
    site = session.scalar(
        select(SharedSite)
        .options(joinedload(SharedSite.town), joinedload(SharedSite.county))
        .where(SharedSite.id == site_pk)
    )
    if site is None:
        raise ApiError(404, "SITE_NOT_FOUND", "the site was removed", message_zh="该安置点已被删除")
    return site


def _stored(row: SitePhoto) -> dict[str, Any]:
    return {
        "photo_id": row.id,
        "name": row.canonical_name,
        "sha256": row.sha256,
        "capture_time": row.capture_time.isoformat() if row.capture_time else None,
        "lat": row.gps_lat,
        "lon": row.gps_lon,
        "relative_altitude_m": row.relative_altitude_m,
        "distance_m": row.distance_m,
    }


def _plain(value: Any) -> Any:
    """JSON-safe copy for a JSON column."""
    return json.loads(json.dumps(value, default=str))
