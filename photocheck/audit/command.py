"""``photocheck audit report``: the offline HTML report, from the service's database
or from a synthetic county (a demo that needs no data)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import select
from tqdm import tqdm

from ..errors import BlobNotFound
from ..policy import Policy
from ..store.blobs import BlobStore
from .engine import AuditConfig, compute_findings
from .progress import compute_progress
from .report import build_report
from .single import SingleThresholds
from .storage import CountyData, fill_legacy_thumbnails

__all__ = ["write_report"]


def _read(blobs: BlobStore, rel: str) -> bytes | None:
    try:
        return blobs.read(rel)
    except BlobNotFound:
        return None


def _compare_legacy_thumbnails(
    data: CountyData, blobs: BlobStore, policy: Policy, show_progress: bool
) -> None:
    """Photos stored before uploads compared their EXIF thumbnail: compare them here
    (synchronously, with a progress bar); the service keeps such results, a report not."""

    def read(rel: str) -> bytes | None:
        return _read(blobs, rel)

    fill_legacy_thumbnails(
        data,
        read,
        max_pixels=policy.quality.max_pixels,
        progress=lambda ids: tqdm(ids, desc="thumbnails", unit="photo", disable=not show_progress),
    )


def write_report(
    out: Path,
    *,
    policy: Policy,
    database_url: str | None = None,
    blobs: BlobStore | None = None,
    county: str | None = None,
    synthetic: int | None = None,
    include_photo_reasons: bool = True,
    show_progress: bool = True,
    gps_radius_m: float | None = None,
) -> int:
    """Write the report; returns the number of findings in it: the ones /audit lists
    (the upload check's own review/reject reasons too, unless ``include_photo_reasons``
    is False). ``gps_radius_m`` overrides the policy's radius, as the service's
    PHOTOCHECK_GPS_RADIUS_M does."""
    now = dt.datetime.now(dt.UTC)
    if synthetic:
        from .synthetic import synthetic_county

        c = synthetic_county(synthetic, seed=1)
        config = AuditConfig(single=SingleThresholds(c.campaign_start, c.campaign_end))
        photos, villages, households, matches = c.photos, c.villages, c.households, c.matches
        now = dt.datetime.combine(c.campaign_start + dt.timedelta(days=4), dt.time(4), dt.UTC)

        def load(pid: str) -> bytes | None:
            return None
    else:
        from ..store import Database
        from ..store.models import County
        from .storage import load_county

        if database_url is None or blobs is None:
            msg = "a database URL and a blob store are needed"
            raise ValueError(msg)
        db = Database(database_url)
        with db.session() as session:
            q = select(County) if county is None else select(County).where(County.name == county)
            row = session.scalars(q.order_by(County.id)).first()
            if row is None:
                msg = f"no county {county!r} in the database" if county else "no county yet"
                raise ValueError(msg)
            data = load_county(session, row.id)
        db.dispose()
        _compare_legacy_thumbnails(data, blobs, policy, show_progress)
        config = AuditConfig.from_policy(policy, gps_radius_m=gps_radius_m)
        photos, villages, households, matches = (
            data.photos, data.villages, data.households, data.matches
        )  # fmt: skip
        paths = data.blob_paths

        store = blobs

        def load(pid: str) -> bytes | None:
            return _read(store, paths[pid]) if pid in paths else None

    findings = compute_findings(photos, villages, matches, config)
    if not include_photo_reasons:
        findings = [f for f in findings if f.kind != "photo_reason"]
    progress = compute_progress(households, villages, now)
    html = build_report(
        findings,
        progress,
        {p.photo_id: p for p in photos},
        {v.village_id: v for v in villages},
        load,
        show_progress=show_progress,
    )
    out.write_text(html, encoding="utf-8")
    return len(findings)
