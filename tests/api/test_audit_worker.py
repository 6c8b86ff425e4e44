"""``AuditWorker``'s wake-up rule: a scene check's later matches are not held back by
a burst of uploads (each upload postpones the debounced refresh)."""

from __future__ import annotations

import threading
import time
from typing import Any, cast

from api.audit import SCENE_DELAY_S, AuditWorker


def test_scene_matches_are_refreshed_soon_while_uploads_keep_coming() -> None:
    worker = AuditWorker(cast(Any, None), debounce_s=60, max_delay_s=600, poll_s=600)
    worker._next_poll = time.monotonic() + 600  # no timer wake-up in this test
    stop = threading.Event()

    def uploads() -> None:  # a burst: each poke pushes the debounced refresh back
        while not stop.is_set():
            worker.poke()
            time.sleep(0.05)

    burst = threading.Thread(target=uploads, daemon=True)
    burst.start()
    try:
        time.sleep(0.2)
        marked = time.monotonic()
        worker.scene_matches(photo_id=7, county_id=3)
        job = worker._next_job()
        waited = time.monotonic() - marked
    finally:
        stop.set()
        burst.join(5)
    assert job == (None, [])  # every county with pending photos, plus the stale one
    assert set(worker._stale) == {3}
    assert SCENE_DELAY_S * 0.9 <= waited < 60  # not the upload debounce (60 s here)


def test_a_county_left_for_later_wakes_the_worker_when_due() -> None:
    """A county not due yet (spaced by its cost) is looked at again at its time, without
    an upload or the minute's poll."""
    worker = AuditWorker(cast(Any, None), debounce_s=60, max_delay_s=600, poll_s=600)
    worker._next_poll = time.monotonic() + 600
    worker._retry_at = time.monotonic() + 0.3
    done: list[object] = []
    waiter = threading.Thread(target=lambda: done.append(worker._next_job()), daemon=True)
    waiter.start()
    waiter.join(30)  # not the poll's 600 s
    assert done == [(None, [])] and worker._retry_at is None
