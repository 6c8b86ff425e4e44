"""Benchmark the county audit on synthetic counties.

Prints the time to compute every finding at 10,000 and 100,000 households and the
ratio (the target is <= 15 for 10x the data: no all-pairs work), plus progress.
With --render it also prints the server time to render the findings page with 1,000
findings (target < 1 s; printed, not asserted).

    /work/venv/bin/python scripts/bench_audit.py [--small 10000] [--large 100000] [--render]
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import sys
import time

from photocheck.audit import (
    CHINA_TZ,
    AuditConfig,
    SingleThresholds,
    compute_findings,
    compute_progress,
)
from photocheck.audit.synthetic import synthetic_county


def timed(fn, repeat: int = 1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def run(n: int, repeat: int) -> tuple[float, float]:
    county = synthetic_county(n, seed=42)
    config = AuditConfig(single=SingleThresholds(county.campaign_start, county.campaign_end))
    seconds, findings = timed(
        lambda: compute_findings(county.photos, county.villages, county.matches, config), repeat
    )
    now = dt.datetime(2020, 8, 5, 12, 0, tzinfo=CHINA_TZ)
    p_seconds, _ = timed(lambda: compute_progress(county.households, county.villages, now), repeat)
    kinds = collections.Counter(f.kind.value for f in findings)
    found_batches = sum(
        any(b <= set(f.photo_ids) for f in findings if f.kind == "desk_batch")
        for b in county.planted_batches
    )
    print(
        f"{n:>7} households {len(county.photos):>7} photos: findings {seconds:7.3f} s, "
        f"progress {p_seconds:6.3f} s; planted batches found {found_batches}/"
        f"{len(county.planted_batches)}; {dict(sorted(kinds.items()))}"
    )
    return seconds, p_seconds


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
        token = make_token(user_id, secret or "", 60)
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
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--render", action="store_true")
    args = parser.parse_args()
    small, ps = run(args.small, args.repeat)
    large, pl = run(args.large, args.repeat)
    ratio = large / small
    print(f"ratio findings {ratio:.1f} (target <= 15 for {args.large / args.small:.0f}x data)")
    print(f"ratio progress {pl / ps:.1f}")
    if args.render:
        render_bench()
    return 0 if ratio <= 15 else 1


if __name__ == "__main__":
    sys.exit(main())
