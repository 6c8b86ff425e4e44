"""Taking in one drone photo of a site: check, name, store (shared by the HTTP route and
``photocheck drone add``).

The photo checks run with ``check_framing=False`` (an aerial view has no house front)
and the site's point as the expected location, within the policy's
``area.site_radius_m``. A rejected photo (unreadable, blurred, too dark...) is not
stored and takes no number; anything else is stored under its canonical name. The same
bytes sent again answer the stored record; the same photo for another site is refused
(``PhotoOfOtherSite``), as is a site removed meanwhile (``SiteNotFound``).
"""

from __future__ import annotations

import datetime as dt
import json
import zlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from ..checks import PhotoContext
from ..drone import photo_facts
from ..errors import PhotoOfOtherSite, SiteNotFound
from ..metadata.gps import haversine_m
from ..model import ContentModel
from ..pipeline import check_photo
from ..policy import Policy
from ..similarity.engine import pdq_usable
from ..verdict import Verdict
from .blobs import BlobStore, PendingBlob
from .db import Database
from .repo import EXTENSIONS
from .sites import SharedSite, SitePhoto, new_site_photo_name

__all__ = ["SiteIntake", "SitePhotoOutcome", "take_site_photo"]


@dataclass(frozen=True)
class SiteIntake:
    """What taking in a site photo needs: the server's state, or the CLI's light one."""

    db: Database
    blobs: BlobStore  # the drone store
    policy: Policy
    model: ContentModel


@dataclass(frozen=True)
class SitePhotoOutcome:
    created: bool  # a new record; False: rejected (not stored) or the same bytes again
    body: dict[str, Any]  # the answer: verdict, reasons, the stored record's facts


def take_site_photo(
    intake: SiteIntake, site_pk: int, user_id: int, blob: PendingBlob
) -> SitePhotoOutcome:
    """Check and store one site photo (``body["stored"]`` says whether it is kept).

    :exception PhotoOfOtherSite: the same photo is registered for another site.
    :exception SiteNotFound: the site was removed meanwhile.
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
        return SitePhotoOutcome(False, {**answer, "stored": False, "photo_id": None, "name": None})
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
                raise PhotoOfOtherSite(row.site.site_code, row.canonical_name)
            body = {**answer, **_stored(row), "stored": True, "existing": True}
            return SitePhotoOutcome(False, body)
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
        return SitePhotoOutcome(True, {**answer, **_stored(row), "stored": True, "existing": False})


def _site(session: Session, site_pk: int) -> SharedSite:
    site = session.scalar(
        select(SharedSite)
        .options(joinedload(SharedSite.town), joinedload(SharedSite.county))
        .where(SharedSite.id == site_pk)
    )
    if site is None:
        raise SiteNotFound(site_pk)
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
