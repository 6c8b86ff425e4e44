"""How `run.py test` spreads the suite over pytest-xdist workers (``--dist loadfile``).

Whole modules per worker, as ``loadfile`` does, with two changes:

- modules that share one expensive session result run as one unit on one worker
  (``UNITS``: the developer set's dedup, its XFeat features and verified pairs are made
  once, not once per worker that happens to get one of the modules; the ``reports``
  of the real photos, checked once for the expectations, content and geometry tests);
- the units known to be long start first (``LONG_FIRST``, measured with
  ``--durations``), so the short ones fill the other workers around them instead of
  one long module starting last and running alone. The rest keep xdist's order.

Nothing about a test changes, only where and when it runs.
"""

from __future__ import annotations

from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]

UNITS = {
    "tests/test_dedup.py": "developer-set",
    "tests/api/test_service_duplicates.py": "developer-set",
    # ``reports`` (tests/conftest.py): the three in one process 16.6 s of CPU, the
    # expectations alone 16.3 s; elsewhere the other two checked ~1.5 s each of photos again
    "tests/test_expectations.py": "reports",
    "tests/test_content.py": "reports",
    "tests/test_geometry.py": "reports",
}

# The longest units first, longest first (from --durations of whole-suite runs on the
# 2-core machine, the last at 22:40 on 1 Dec with the evening's cuts): the developer set
# (CPU), then the modules that wait on real processes and background checks (kill -9
# and PostgreSQL restarts, findings, SeaweedFS outages, a login flood), then the
# CPU-bound ones, each over ~10 s. A single long test left to the end would run alone.
LONG_FIRST = (
    "tests/api/test_service_duplicates.py",  # with tests/test_dedup.py (UNITS)
    "tests/test_dedup.py",
    "tests/scale/test_faults.py",
    "tests/api/test_audit.py",
    "tests/api/test_intake_features.py",
    "tests/api/test_login_flood.py",  # one test (34 s at load 8)
    "tests/scale/test_resumable_s3.py",
    "tests/api/test_s3_storage.py",
    "tests/test_expectations.py",  # with test_content and test_geometry (UNITS)
    "tests/api/test_audit_browser.py",
    "tests/api/test_session.py",
    "tests/api/test_recheck.py",
    "tests/scale/test_workers.py",
    "tests/api/test_schemathesis.py",
    "tests/test_decode_budget.py",  # one test, the bombs
    "tests/api/test_idempotency_crash.py",
    "tests/drone/test_cli_drone.py",  # one test
    "tests/api/test_village_browser.py",
    "tests/test_decode.py",
    "tests/scale/test_recheck_kill.py",  # one test
    "tests/api/test_index_load.py",
    "tests/api/test_roles.py",
)


def module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


class SuiteScheduling(LoadScopeScheduling):
    """``loadfile`` with the units of ``UNITS``; the work queue in collection order,
    which ``order_long_first`` made long-first."""

    def __init__(self, config: pytest.Config, log: Any = None) -> None:
        super().__init__(config, log)
        config.option.loadscopereorder = False  # keep the long-first order

    def _split_scope(self, nodeid: str) -> str:
        module = module_of(nodeid)
        return UNITS.get(module, module)


def order_long_first(items: list[pytest.Item]) -> None:
    """Move the modules of ``LONG_FIRST`` (and their units) to the front, whole and in
    their own order; every worker computes the same order from the same collection."""
    rank = {m: i for i, m in enumerate(LONG_FIRST)}
    for module, unit in UNITS.items():
        for other, u in UNITS.items():
            if u == unit and other in rank:
                rank[module] = min(rank.get(module, rank[other]), rank[other])
    last = len(rank)
    items.sort(key=lambda item: rank.get(module_of(item.nodeid), last))  # stable
