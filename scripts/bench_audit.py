"""Benchmark the county audit on synthetic counties.

Prints the time to compute every finding at 10,000 and 100,000 households and the
ratio (the target is <= 15 for 10x the data: no all-pairs work), with the time of each
stage (columns, clusters, batches, movers, single, merge) so that a regression shows
where it is, plus progress. Sizes are interleaved (small, large, small, ...) and each
time is the median of ``--repeat`` runs, so a burst of load from another process hits
both sizes alike; a full garbage collection before each run keeps a collection of the
whole heap (proportional to the data held, not to the audit's work) out of the timings.
With --render it also prints the server time to render the findings page with 1,000
findings (target < 1 s; printed, not asserted). With --stored N it instead stores a
synthetic county of about N households in a database (SQLite by default,
--database-url for an empty PostgreSQL schema) and prints the CPU of each refresh
(load, compute, save) and what ``PHOTOCHECK_AUDIT_SPACING`` makes of it.

    /work/venv/bin/python scripts/bench_audit.py [--small 10000] [--large 100000] \
        [--repeat 7] [--render]
    /work/venv/bin/python scripts/bench_audit.py --stored 50000 [--database-url URL]
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import gc
import statistics
import sys
import time

from photocheck.audit import (
    CHINA_TZ,
    AuditConfig,
    SingleThresholds,
    compute_findings,
    compute_progress,
)
from photocheck.audit.records import PhotoRecord
from photocheck.audit.synthetic import SyntheticCounty, synthetic_county

STAGES = ("columns", "clusters", "batches", "movers", "single", "merge")
NOW = dt.datetime(2020, 8, 5, 12, 0, tzinfo=CHINA_TZ)


def run_once(county: SyntheticCounty) -> dict[str, float]:
    """Seconds of one findings computation (total and per stage) and of progress."""
    config = AuditConfig(single=SingleThresholds(county.campaign_start, county.campaign_end))
    stages: dict[str, float] = {}
    gc.collect()
    t = time.perf_counter()
    compute_findings(county.photos, county.villages, county.matches, config, timings=stages)
    stages["findings"] = time.perf_counter() - t
    gc.collect()
    t = time.perf_counter()
    compute_progress(county.households, county.villages, NOW)
    stages["progress"] = time.perf_counter() - t
    return stages


def describe(n: int, county: SyntheticCounty) -> str:
    config = AuditConfig(single=SingleThresholds(county.campaign_start, county.campaign_end))
    findings = compute_findings(county.photos, county.villages, county.matches, config)
    kinds = collections.Counter(f.kind.value for f in findings)
    found_batches = sum(
        any(b <= set(f.photo_ids) for f in findings if f.kind == "desk_batch")
        for b in county.planted_batches
    )
    return (
        f"{n:>7} households {len(county.photos):>7} photos: planted batches found "
        f"{found_batches}/{len(county.planted_batches)}; {dict(sorted(kinds.items()))}"
    )


def render_bench(n_findings: int = 1000) -> None:
    """Server time of GET /audit with ``n_findings`` findings on one page (SQLite)."""
    import tempfile
    from pathlib import Path

    from fastapi.testclient import TestClient
    from sqlalchemy import select

    from api.accounts import add_user
    from api.main import create_app
    from api.security import make_token
    from api.settings import Settings
    from photocheck.audit.tables import AuditFindingRow
    from photocheck.store import Role, Town, User, Village

    county = synthetic_county(20_000, seed=7)
    findings = compute_findings(county.photos, county.villages, county.matches)[:n_findings]
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(DATA_DIR=Path(tmp) / "data")
        add_user(settings, "bench-admin", "bench-password-1", role=Role.COUNTY, county="基准县")
        app = create_app(settings)
        state = app.state.photocheck
        with state.db.write() as session:
            user = session.scalar(select(User).where(User.username == "bench-admin"))
            towns = {}
            for v in county.villages:
                if v.town not in towns:
                    towns[v.town] = Town(county_id=user.county_id, name=v.town)
                    session.add(towns[v.town])
            session.flush()
            ids = {}
            for v in county.villages:
                row = Village(town_id=towns[v.town].id, name=v.name,
                              centre_lat=v.centre_lat, centre_lon=v.centre_lon)  # fmt: skip
                session.add(row)
                session.flush()
                ids[v.village_id] = (row.id, towns[v.town].id)
            for f in findings:
                vid, tid = ids[f.village_ids[0]]
                session.add(
                    AuditFindingRow(
                        id=f.id, county_id=user.county_id, kind=f.kind.value,
                        severity=f.severity.value, town_id=tid, village_id=vid, day=f.day,
                        photo_ids=[int(p[1:]) for p in f.photo_ids],
                        household_codes=list(f.household_ids),
                        village_ids=[ids[v][0] for v in f.village_ids],
                        summary_zh=f.summary_zh, summary_en=f.summary_en, evidence=f.evidence,
                        active=True, status="open",
                    )
                )  # fmt: skip
            user_id, secret = user.id, settings.SECRET_KEY
        token = make_token(user_id, 0, secret or "", 60)  # generation 0: a new account
        with TestClient(app) as client:
            client.cookies.set("photocheck_token", token)
            client.get("/audit", params={"limit": 10})  # warm up templates
            best_wall, best_server = float("inf"), float("inf")
            for _ in range(3):
                t = time.perf_counter()
                r = client.get("/audit", params={"limit": n_findings})
                best_wall = min(best_wall, time.perf_counter() - t)
                assert r.status_code == 200, r.text[:300]
                server = float(r.headers["server-timing"].split("dur=")[1]) / 1000
                best_server = min(best_server, server)
            rows = r.text.count('class="finding"')
    print(
        f"findings page with {rows} findings: server {best_server * 1000:.0f} ms "
        f"(query + render), request {best_wall * 1000:.0f} ms (target < 1 s)"
    )


def store_county(db_url: str, county: SyntheticCounty) -> None:
    """The synthetic county as stored rows (households, photos with EXIF JSON as the
    upload writes it, matches), so a refresh reads it as the service would."""
    import datetime as dt

    from sqlalchemy import insert

    from api.migrate import upgrade
    from photocheck.store import Database
    from photocheck.store.models import County, Household, Photo, PhotoMatch, Town, User, Village

    db = Database(db_url)
    upgrade(db.engine)
    towns = {t: i + 1 for i, t in enumerate(sorted({v.town for v in county.villages}))}
    villages = {v.village_id: i + 1 for i, v in enumerate(county.villages)}
    users = {u: i + 1 for i, u in enumerate(sorted({p.verifier for p in county.photos}))}
    households = {h.household_id: i + 1 for i, h in enumerate(county.households)}
    photos = {p.photo_id: i + 1 for i, p in enumerate(county.photos)}

    def exif(p: PhotoRecord) -> dict:
        taken = p.captured_at.strftime("%Y-%m-%dT%H:%M:%S") if p.captured_at else None
        return {
            "has_exif": p.has_camera_metadata,
            "make": "HUAWEI" if p.has_camera_metadata else None,
            "model": "P40" if p.has_camera_metadata else None,
            "gps": {"lat": p.lat, "lon": p.lon} if p.lat is not None else {},
            "capture_time": {"local": taken} if taken else {},
        }

    with db.write() as s:
        s.execute(insert(County), [{"id": 1, "name": "基准县"}])
        s.execute(insert(Town), [{"id": i, "county_id": 1, "name": t} for t, i in towns.items()])
        s.execute(insert(Village), [
            {"id": villages[v.village_id], "town_id": towns[v.town], "name": v.name,
             "centre_lat": v.centre_lat, "centre_lon": v.centre_lon}
            for v in county.villages
        ])  # fmt: skip
        s.execute(insert(User), [
            {"id": i, "username": u, "password_hash": "x", "role": "village", "county_id": 1}
            for u, i in users.items()
        ])  # fmt: skip
        s.execute(insert(Household), [
            {"id": households[h.household_id], "county_id": 1, "household_code": h.household_id,
             "head_name": "某", "village_id": villages[h.village_id], "category": "appraised"}
            for h in county.households
        ])  # fmt: skip
        rows = [
            {"id": photos[p.photo_id], "household_id": households[p.household_id],
             "sha256": f"{photos[p.photo_id]:064x}", "size": 3_000_000, "format": "JPEG",
             "blob_path": f"blobs/{photos[p.photo_id]}", "export_name": "x.jpg",
             "verdict": p.verdict, "reasons": [{"code": r} for r in p.reasons],
             "metrics": {"sharpness": 120.5, "thumbnail_similarity": 0.98,
                         "thumbnail_difference": 3.1},
             "exif": exif(p), "capture": None, "uploaded_by": users[p.verifier],
             "uploaded_at": p.uploaded_at or dt.datetime(2020, 8, 4, tzinfo=dt.UTC),
             "policy_version": "bench", "model_version": "bench", "is_current": p.is_current}
            for p in county.photos
        ]  # fmt: skip
        for i in range(0, len(rows), 5000):
            s.execute(insert(Photo), rows[i : i + 5000])
        matches = [
            {"photo_id": photos[m.photo_id], "other_photo_id": photos[m.other_photo_id],
             "relation": m.relation, "distance": m.distance, "evidence": m.evidence or {}}
            for m in county.matches
            if m.photo_id in photos and m.other_photo_id in photos
        ]  # fmt: skip
        if matches:
            s.execute(insert(PhotoMatch), matches)
    db.dispose()


def stored_bench(n: int, db_url: str | None, repeat: int) -> None:
    """CPU of a refresh of a stored county (this process: load, compute, save; the
    database server's own CPU is not in it), the first one cold, and what the spacing
    makes of it."""
    import os
    import resource
    import tempfile
    from pathlib import Path
    from typing import Any

    from sqlalchemy import text

    from photocheck.audit import storage
    from photocheck.audit.refresh import REFRESH_SPACING
    from photocheck.store import Database

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    def backend_cpu(session: Any) -> float:
        """CPU of the session's PostgreSQL backend so far (same machine), 0 on SQLite."""
        if session.get_bind().dialect.name != "postgresql":
            return 0.0
        pid = session.scalar(text("SELECT pg_backend_pid()"))
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    county = synthetic_county(n, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        url = db_url or f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        store_county(url, county)
        db = Database(url)
        config = AuditConfig(single=SingleThresholds(county.campaign_start, county.campaign_end))
        print(f"stored county: {len(county.photos)} photos, {len(county.households)} households "
              f"({db.dialect})")  # fmt: skip
        totals = []
        for i in range(repeat):
            gc.collect()
            t0, w0 = cpu(), time.perf_counter()
            with db.session() as session:
                b0 = backend_cpu(session)
                data = storage.load_county(session, 1)
                server = backend_cpu(session) - b0
            t1 = cpu()
            findings = compute_findings(data.photos, data.villages, data.matches, config)
            t2 = cpu()
            with db.write() as session:
                b0 = backend_cpu(session)
                storage.save_findings(session, 1, data, findings, seconds=0.0)
                server += backend_cpu(session) - b0
            t3, wall = cpu(), time.perf_counter() - w0
            totals.append((t3 - t0, wall, server))
            print(
                f"  refresh {i + 1}{' (cold)' if i == 0 else ''}: load {(t1 - t0) * 1e3:.0f}, "
                f"compute {(t2 - t1) * 1e3:.0f}, save {(t3 - t2) * 1e3:.0f} ms CPU "
                f"({wall * 1e3:.0f} ms wall); database server {server * 1e3:.0f} ms CPU; "
                f"{len(findings)} findings"
            )
        db.dispose()
    warm = totals[1:] or totals
    mine = statistics.median(c for c, _, _ in warm)
    wall = statistics.median(w for _, w, _ in warm)
    server = statistics.median(b for _, _, b in warm)
    n_photos = len(county.photos)
    print(
        f"warm refresh (median of {len(warm)}): {mine:.3f} s CPU = {mine / n_photos * 1e3:.4f} ms "
        f"per photo, database server {server / n_photos * 1e3:.4f} ms per photo; spaced at "
        f"{REFRESH_SPACING:g}x its {wall:.2f} s wall: at most one per "
        f"{max(REFRESH_SPACING * wall, 3.0):.0f} s = "
        f"{(mine + server) / max(REFRESH_SPACING * wall, 3.0):.3f} core for this county"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--render", action="store_true")
    parser.add_argument(
        "--stored",
        type=int,
        metavar="N",
        help="instead: refreshes of a stored county of about N households",
    )
    parser.add_argument("--database-url", help="with --stored: an empty database (default: SQLite)")
    args = parser.parse_args()
    if args.stored:
        stored_bench(args.stored, args.database_url, max(2, min(args.repeat, 5)))
        return 0
    sizes = (args.small, args.large)
    counties = {n: synthetic_county(n, seed=42) for n in sizes}
    for n in sizes:
        print(describe(n, counties[n]))
    runs: dict[int, list[dict[str, float]]] = {n: [] for n in sizes}
    for _ in range(args.repeat):
        for n in sizes:
            runs[n].append(run_once(counties[n]))
    med = {n: {k: statistics.median(r[k] for r in runs[n]) for k in runs[n][0]} for n in sizes}
    print(f"median of {args.repeat} interleaved runs, ms:")
    print(f"{'stage':>10} {args.small:>10} {args.large:>10}  ratio")
    for k in (*STAGES, "findings", "progress"):
        a, b = med[args.small][k], med[args.large][k]
        print(f"{k:>10} {a * 1e3:10.1f} {b * 1e3:10.1f}  {b / a if a else float('nan'):5.1f}")
    ratio = med[args.large]["findings"] / med[args.small]["findings"]
    spread = [
        max(r["findings"] for r in runs[n]) / min(r["findings"] for r in runs[n]) for n in sizes
    ]
    print(
        f"ratio findings {ratio:.1f} (target <= 15 for {args.large / args.small:.0f}x data); "
        f"max/min of the runs {spread[0]:.2f} and {spread[1]:.2f} (above ~1.3: a noisy machine)"
    )
    print(f"ratio progress {med[args.large]['progress'] / med[args.small]['progress']:.1f}")
    if args.render:
        render_bench()
    return 0 if ratio <= 15 else 1


if __name__ == "__main__":
    sys.exit(main())
