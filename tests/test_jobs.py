"""``ThreadJobs``: the embedded "run this job" queue behind the scene check."""

from __future__ import annotations

import json
import threading
import time

import pytest

from photocheck.store.foreground import Foreground
from photocheck.store.jobs import ThreadJobs


def test_jobs_run_in_order_once_each_and_survive_a_failing_one() -> None:
    ran: list[int] = []
    gate = threading.Event()

    def handler(key: int) -> None:
        gate.wait(10)
        if key == 2:
            raise RuntimeError("boom")  # logged; the next job still runs
        ran.append(key)

    jobs = ThreadJobs({"scene_check": handler}, threads=1)  # in order: one thread
    for key in (1, 2, 3, 3, 4):  # 3 queued twice: run once
        jobs.enqueue("scene_check", key)
    assert len(jobs) >= 3
    gate.set()
    assert jobs.drain(timeout=30)
    assert ran == [1, 3, 4] and len(jobs) == 0


def test_unknown_job_kind_is_refused() -> None:
    with pytest.raises(KeyError):
        ThreadJobs({}).enqueue("nope", 1)


def test_several_threads_run_jobs_side_by_side() -> None:
    both = threading.Barrier(2, timeout=10)  # each job waits for the other: needs 2 threads

    def handler(key: int) -> None:
        both.wait()

    jobs = ThreadJobs({"scene_check": handler}, threads=2)
    jobs.enqueue("scene_check", 1)
    jobs.enqueue("scene_check", 2)
    assert jobs.drain(timeout=30)
    assert not both.broken
    assert jobs.stats()["scene_check"]["jobs"] == 2


def test_job_stats_add_up_every_jobs_cpu() -> None:
    """The benchmarks tell the scene checks' CPU apart from the requests' with this."""

    def handler(key: int) -> None:
        deadline = time.thread_time() + 0.02 * key
        while time.thread_time() < deadline:
            pass  # burn this thread's CPU

    jobs = ThreadJobs({"scene_check": handler}, threads=1)
    for key in (1, 2, 3):
        jobs.enqueue("scene_check", key)
    assert jobs.drain(timeout=30)
    stats = jobs.stats()["scene_check"]
    assert stats["jobs"] == 3 and stats["queued"] == 0
    assert stats["run_p95_s"] >= stats["run_p50_s"] >= 0
    assert stats["cpu_total_s"] >= 0.12 - 0.005  # 20 + 40 + 60 ms, rounded to 1 ms


def test_jobs_wait_while_uploads_run_but_not_for_ever() -> None:
    """``Foreground``: a job queued while an upload is in flight starts only once the
    process is free of uploads (a niced job holding the GIL stalls every request); a
    sustained load holds it back at most ``max_hold_s``."""
    ran = threading.Event()
    foreground = Foreground(quiet_s=0.05, max_hold_s=600)
    jobs = ThreadJobs({"scene_check": lambda key: ran.set()}, threads=1, foreground=foreground)
    with foreground.busy():
        jobs.enqueue("scene_check", 1)
        assert not ran.wait(0.5)  # held back while the upload runs
    assert jobs.drain(timeout=30) and ran.is_set()
    assert foreground.held_s > 0

    ran.clear()
    foreground.max_hold_s = 0.2
    with foreground.busy():  # uploads without end: the job starts anyway
        jobs.enqueue("scene_check", 2)
        assert jobs.drain(timeout=30) and ran.is_set()


@pytest.mark.postgres
def test_a_stopped_runner_finishes_and_records_the_job_in_flight() -> None:
    """``JobRunner.stop`` (a serve process shutting down) wakes pgqueuer's listener
    instead of waiting on it, and still lets the job in flight finish and be recorded:
    the queue is empty afterwards, so no other worker runs it again."""
    from sqlalchemy import text

    from photocheck.jobs import JobRunner, enqueue, install
    from photocheck.store import Database
    from tests.api.conftest import pg_schema

    with pg_schema() as url:
        db = Database(url)
        try:
            install(url)  # pgqueuer's tables are all the runner needs
            started, release = threading.Event(), threading.Event()

            def handler(_: dict) -> None:
                started.set()
                release.wait(10)

            runner = JobRunner(url, {"held": handler}).start()
            with db.session() as session:
                enqueue(session, "held", {"key": 1})
                session.commit()
            assert started.wait(30)
            threading.Timer(0.3, release.set).start()  # finishes while the runner stops
            runner.stop()
            assert runner.done == 1
            with db.session() as session:
                assert session.scalar(text("SELECT count(*) FROM pgqueuer")) == 0
                logged = "SELECT count(*) FROM pgqueuer_log WHERE status = 'successful'"
                assert session.scalar(text(logged)) == 1
        finally:
            db.dispose()


@pytest.mark.postgres
def test_a_county_left_for_later_is_one_delayed_job() -> None:
    """``refresh_later``: one queued ``audit_refresh`` per county, delayed until the
    county is due, carrying since when it is stale; asked twice, still one."""
    import datetime as dt
    from types import SimpleNamespace
    from typing import Any, cast

    from sqlalchemy import text

    from api.audit import SCENE_DELAY_S
    from api.jobs import _refresh_one
    from photocheck.jobs import AUDIT_REFRESH, install, refresh_later, refresh_payload
    from photocheck.store import Database
    from tests.api.conftest import pg_schema

    since = dt.datetime(2026, 12, 2, 8, 0, tzinfo=dt.UTC)
    with pg_schema() as url:
        db = Database(url)
        try:
            install(url)
            for _ in range(2):
                with db.session() as session:
                    refresh_later(session, {7: 120.0, 8: 5.0}, {7: since, 8: since})
                    session.commit()
            # a `photocheck worker`'s scene check with later matches: its county's job
            _refresh_one(cast(Any, SimpleNamespace(db=db)), 9)
            with db.session() as session:
                rows = session.execute(
                    text(
                        "SELECT entrypoint, payload, execute_after - created AS delay"
                        " FROM pgqueuer ORDER BY execute_after"
                    )
                ).all()
        finally:
            db.dispose()
    assert [r.entrypoint for r in rows] == [AUDIT_REFRESH] * 3
    payloads = [refresh_payload(json.loads(bytes(r.payload))) for r in rows]
    assert payloads[0].keys() == {9} and payloads[1:] == [{8: since}, {7: since}]
    delays = [r.delay.total_seconds() for r in rows]
    assert delays[0] == pytest.approx(SCENE_DELAY_S, abs=0.5)
    assert 4.5 < delays[1] <= 5.5 and 119.5 < delays[2] <= 120.5
    assert refresh_payload({}) == {}  # the job enqueued with each photo: pending counties
