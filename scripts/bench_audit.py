"""Benchmark the county audit on synthetic counties.

Prints the time to compute every finding at 10,000 and 100,000 households and the
ratio (the target is <= 15 for 10x the data: no all-pairs work), with the time of each
stage (columns, clusters, batches, movers, single, merge) so that a regression shows
where it is, plus progress. Sizes are interleaved (small, large, small, ...) and each
time is the median of ``--repeat`` runs, so a burst of load from another process hits
both sizes alike; a full garbage collection before each run keeps a collection of the
whole heap (proportional to the data held, not to the audit's work) out of the timings.
With --render it also prints the server time to render the findings page with 1,000
findings (target < 1 s; printed, not asserted).

    /work/venv/bin/python scripts/bench_audit.py [--small 10000] [--large 100000] \
        [--repeat 7] [--render]
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--render", action="store_true")
    args = parser.parse_args()
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
