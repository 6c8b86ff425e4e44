"""``photocheck drone add FOLDER`` and ``photocheck drone package --out DIR``.

Both work on the service's own data folder and database (``api.settings.Settings``),
without starting the server and without its start-up reconcile, so they are safe to
run beside a running ``photocheck serve``. Results are JSON Lines on stdout; progress
and the summary go to stderr.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select

from photocheck import ContentModel, Policy, read_metadata
from photocheck.drone import build_package, nearest_site, photo_facts
from photocheck.errors import SiteError
from photocheck.store import Database, Household, Role, Town, User, Village
from photocheck.store.site_intake import SiteIntake, take_site_photo
from photocheck.store.sites import list_sites, to_site, village_package_photos

from .migrate import upgrade
from .settings import Settings

__all__ = ["add_folder", "package_all"]

Progress = Callable[[Iterable[Any], str], Iterable[Any]]


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def _database(settings: Settings) -> Database:
    settings.prepare()
    db = Database(settings.database_url)
    if settings.RUN_MIGRATIONS:
        upgrade(db.engine)
    return db


def _county_user(db: Database, username: str | None) -> User:
    with db.session() as session:
        query = select(User).where(User.role == Role.COUNTY)
        if username:
            query = query.where(User.username == username)
        users = session.scalars(query).all()
    if len(users) != 1:
        why = f"no county account {username!r}" if username else "name the county account"
        msg = f"{why}: pass --user (the account the photos are recorded under)"
        raise SystemExit(f"photocheck drone: {msg}")
    return users[0]


def add_folder(
    paths: list[Path],
    *,
    policy: Policy,
    model: ContentModel,
    progress: Progress,
    username: str | None = None,
    radius_m: float | None = None,
    settings: Settings | None = None,
) -> int:
    """Place each photo at the nearest registered site within the radius and store it."""
    settings = settings or Settings()
    db = _database(settings)
    user = _county_user(db, username)
    with db.session() as session:
        rows = list_sites(session, user.county_id)
        sites = [(row.id, to_site(row)) for row in rows]
    radius = radius_m or policy.area.site_radius_m
    intake = SiteIntake(db, settings.blob_config().store("drone"), policy, model)
    stored = rejected = 0
    unplaced: list[str] = []
    for path in progress(paths, "drone add"):
        out = _add_one(path, sites, radius, intake, user.id)
        _emit(out)
        if out.get("stored"):
            stored += 1
        elif out.get("site_id") is None:
            unplaced.append(f"{path} ({out['why']})")
        else:
            rejected += 1
    print(
        f"drone add: {stored} stored, {rejected} not stored, {len(unplaced)} not placed",
        file=sys.stderr,
    )
    for line in unplaced:
        print(f"  not placed: {line}", file=sys.stderr)
    db.dispose()
    return 0


def _add_one(
    path: Path, sites: list[tuple[int, Any]], radius: float, intake: SiteIntake, user_id: int
) -> dict[str, Any]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        return {"file": str(path), "site_id": None, "why": f"cannot read: {exc}"}
    facts = photo_facts(read_metadata(data))
    if facts.lat is None or facts.lon is None:
        return {"file": str(path), "site_id": None, "why": "no GPS position in the photo"}
    placed = nearest_site(facts.lat, facts.lon, [s for _, s in sites], radius_m=radius)
    if placed is None:
        why = f"no registered site within {radius:g} m of {facts.lat:.6f},{facts.lon:.6f}"
        return {"file": str(path), "site_id": None, "why": why}
    site_pk = next(pk for pk, s in sites if s is placed.site)
    writer = intake.blobs.open_writer(len(data))
    writer.write(data)
    blob = writer.finish()
    try:
        body = take_site_photo(intake, site_pk, user_id, blob).body
    except SiteError as exc:  # e.g. the same photo is already stored for another site
        body = {"site_id": placed.site.site_id, "stored": False, "error": str(exc)}
    finally:
        blob.discard()  # a no-op once stored
    return {"file": str(path), "distance_m": round(placed.distance_m, 1), **body}


def _villages_with_sites(db: Database) -> Iterator[Village]:
    with db.session() as session:
        ids = session.scalars(
            select(Household.village_id).where(Household.site_code.is_not(None)).distinct()
        ).all()
    for village_id in sorted(ids):
        with db.session() as session:
            village = session.get(Village, village_id)
            assert village is not None
            yield village


def package_all(out_dir: Path, *, progress: Progress, settings: Settings | None = None) -> int:
    """Write every village's drone package (villages with a linked household) to out_dir."""
    settings = settings or Settings()
    db = _database(settings)
    blobs = settings.blob_config().store("drone")
    out_dir.mkdir(parents=True, exist_ok=True)
    villages = list(_villages_with_sites(db))
    written = 0
    for village in progress(villages, "drone package"):
        with db.session() as session:
            village = session.get(Village, village.id)
            assert village is not None
            town = session.get(Town, village.town_id)
            assert town is not None
            photos = village_package_photos(session, village, blobs)
            name = f"{town.county.name}_{town.name}_{village.name}_航拍照片.zip"
        if not photos:
            _emit({"village_id": village.id, "village": village.name, "file": None})
            continue
        layout = build_package(photos)
        target = out_dir / _safe(name)
        partial = target.with_name(target.name + ".part")
        with partial.open("wb") as fh:
            layout.write_to(fh)
        os.replace(partial, target)
        written += 1
        _emit(
            {
                "village_id": village.id,
                "village": village.name,
                "file": str(target),
                "bytes": layout.size,
                "photos": len(photos),
                "etag": layout.etag,
            }
        )
    print(
        f"drone package: {written} of {len(villages)} villages written to {out_dir}",
        file=sys.stderr,
    )
    db.dispose()
    return 0


def _safe(name: str) -> str:
    return "".join("_" if c in '<>:"/\\|?*' or ord(c) < 32 else c for c in name)
