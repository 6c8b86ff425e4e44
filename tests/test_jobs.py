"""``ThreadJobs``: the embedded "run this job" queue behind the scene check."""

from __future__ import annotations

import threading

import pytest

from photocheck.store.jobs import ThreadJobs


def test_jobs_run_in_order_once_each_and_survive_a_failing_one() -> None:
    ran: list[int] = []
    gate = threading.Event()

    def handler(key: int) -> None:
        gate.wait(10)
        if key == 2:
            raise RuntimeError("boom")  # logged; the next job still runs
        ran.append(key)

    jobs = ThreadJobs({"scene_check": handler})
    for key in (1, 2, 3, 3, 4):  # 3 queued twice: run once
        jobs.enqueue("scene_check", key)
    assert len(jobs) >= 3
    gate.set()
    assert jobs.drain(timeout=30)
    assert ran == [1, 3, 4] and len(jobs) == 0


def test_unknown_job_kind_is_refused() -> None:
    with pytest.raises(KeyError):
        ThreadJobs({}).enqueue("nope", 1)
