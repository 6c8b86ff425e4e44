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


def render_bench() -> None:
    from api.audit_bench import render_findings_page_seconds

    seconds = render_findings_page_seconds(1000)
    print(f"findings page with 1000 findings: server render {seconds * 1000:.0f} ms (target < 1 s)")


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
