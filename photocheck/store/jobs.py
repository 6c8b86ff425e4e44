"""Work done after an upload's answer: the "run this job" interface and its embedded form.

A job is a kind and a key (a photo id): small enough for any queue, and the handler
reads everything else from the database, so a job runs the same in this process, in
another one, or after a restart. ``ThreadJobs`` is the embedded default: one thread
per process, first in first out, at lower CPU priority than the request threads. A
PostgreSQL job queue (``serve --workers``) implements the same ``Jobs`` protocol.

Jobs are not durable here: whoever enqueues them also marks the work in the database
(``photos.scene_checked = false``), and the start-up enqueues what is still marked.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Protocol

__all__ = ["Handler", "Jobs", "ThreadJobs", "lower_priority"]

log = logging.getLogger(__name__)

Handler = Callable[[int], None]


class Jobs(Protocol):
    """Run ``handlers[kind](key)`` some time after this call, at least once."""

    def enqueue(self, kind: str, key: int) -> None: ...


class ThreadJobs:
    """``Jobs`` on one background thread of this process (the embedded default)."""

    def __init__(self, handlers: Mapping[str, Handler]) -> None:
        self._handlers = dict(handlers)
        self._cond = threading.Condition()
        self._queue: deque[tuple[str, int]] = deque()
        self._queued: set[tuple[str, int]] = set()
        self._running = 0
        self._thread: threading.Thread | None = None

    def enqueue(self, kind: str, key: int) -> None:
        if kind not in self._handlers:
            msg = f"no handler for job kind {kind!r}"
            raise KeyError(msg)
        with self._cond:
            if (kind, key) not in self._queued:
                self._queued.add((kind, key))
                self._queue.append((kind, key))
            self._start()
            self._cond.notify_all()

    def __len__(self) -> int:
        """Jobs queued or running."""
        with self._cond:
            return len(self._queue) + self._running

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every queued job has run; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._running, timeout)

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="photocheck-jobs", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        lower_priority()
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue))
                kind, key = self._queue.popleft()
                self._queued.discard((kind, key))
                self._running += 1
            try:
                self._handlers[kind](key)
            except Exception:  # a failed job stays marked in the database: retried at start
                log.exception("job %s(%d) failed", kind, key)
            finally:
                with self._cond:
                    self._running -= 1
                    self._cond.notify_all()


def lower_priority() -> None:
    """Nice the calling thread (Linux: per thread) so request threads come first: every
    background thread of a service process (scene checks, the audit refresh)."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not allowed
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
