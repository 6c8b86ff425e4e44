"""Work done after an upload's answer: the "run this job" interface and its embedded form.

A job is a kind and a key (a photo id): small enough for any queue, and the handler
reads everything else from the database, so a job runs the same in this process, in
another one, or after a restart. ``ThreadJobs`` is the embedded default: a few
threads per process (one per core by default, so a scene check is never stuck behind
another one on a free core), first in first out, at a lower CPU priority than the
request threads. A PostgreSQL job queue (``serve --workers``) implements the same
``Jobs`` protocol.

Jobs are not durable here: whoever enqueues them also marks the work in the database
(``photos.scene_checked = false``), and the start-up enqueues what is still marked.

``stats()`` says where a job's time went (waiting in the queue vs running), per kind:
``scripts/bench_scene_pending.py`` reads it from ``/health``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Protocol

from .foreground import Foreground

__all__ = ["JOB_NICE", "Handler", "Jobs", "ThreadJobs", "default_threads", "lower_priority"]

log = logging.getLogger(__name__)

Handler = Callable[[int], None]
# Below the request threads (0), so an upload answer is never held up by a check: an
# XFeat check costs ~1-2 s CPU, the photo checks of 20-30 uploads, and at request
# priority a burst gave the checks half the cores and answered at half the rate. A
# burst that outruns the checks leaves them behind, caught up after it; not at the
# bottom (19), so a sustained load does not starve them.
JOB_NICE = 10
_STATS_KEPT = 4096  # per kind, the latest jobs' (wait, run) seconds


def default_threads() -> int:
    """One job thread per core (the checks' native code releases the GIL)."""
    return max(1, os.cpu_count() or 1)


class Jobs(Protocol):
    """Run ``handlers[kind](key)`` some time after this call, at least once."""

    def enqueue(self, kind: str, key: int) -> None: ...


class ThreadJobs:
    """``Jobs`` on ``threads`` background threads of this process (the embedded default)."""

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        threads: int | None = None,
        *,
        foreground: Foreground | None = None,
    ) -> None:
        self._handlers = dict(handlers)
        self._foreground = foreground  # jobs wait while uploads run (``foreground``)
        self._threads_wanted = threads or default_threads()
        self._cond = threading.Condition()
        self._queue: deque[tuple[str, int, float]] = deque()
        self._queued: set[tuple[str, int]] = set()
        self._running = 0
        self._threads: list[threading.Thread] = []
        self._times: dict[str, deque[tuple[float, float, float]]] = {}
        self._cpu_total: dict[str, float] = {}  # every job's thread CPU, per kind

    def enqueue(self, kind: str, key: int) -> None:
        if kind not in self._handlers:
            msg = f"no handler for job kind {kind!r}"
            raise KeyError(msg)
        with self._cond:
            if (kind, key) not in self._queued:
                self._queued.add((kind, key))
                self._queue.append((kind, key, time.monotonic()))
            self._start()
            self._cond.notify()

    def __len__(self) -> int:
        """Jobs queued or running."""
        with self._cond:
            return len(self._queue) + self._running

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every queued job has run; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._running, timeout)

    def stats(self) -> dict[str, dict[str, float]]:
        """Per kind, over the latest jobs: count, queued now, and the median / p95
        seconds spent waiting in the queue and running."""
        with self._cond:
            times = {k: list(v) for k, v in self._times.items()}
            queued = {k: sum(q[0] == k for q in self._queue) for k in self._handlers}
            cpu_total = dict(self._cpu_total)
        out = {}
        for kind, rows in times.items():
            waits, runs = sorted(r[0] for r in rows), sorted(r[1] for r in rows)
            cpus = sorted(r[2] for r in rows)
            out[kind] = {
                "jobs": len(rows),
                "queued": queued.get(kind, 0),
                "wait_p50_s": round(_pct(waits, 0.5), 3),
                "wait_p95_s": round(_pct(waits, 0.95), 3),
                "run_p50_s": round(_pct(runs, 0.5), 3),
                "run_p95_s": round(_pct(runs, 0.95), 3),
                "cpu_p50_s": round(_pct(cpus, 0.5), 3),  # this thread's CPU
                "cpu_p95_s": round(_pct(cpus, 0.95), 3),
                "cpu_total_s": round(cpu_total.get(kind, 0.0), 3),  # all jobs since start
            }
        return out

    def _start(self) -> None:
        self._threads = [t for t in self._threads if t.is_alive()]
        while len(self._threads) < self._threads_wanted:
            thread = threading.Thread(target=self._run, name="photocheck-jobs", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _run(self) -> None:
        lower_priority(JOB_NICE)
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue))
            if self._foreground is not None:
                self._foreground.wait_quiet()
            with self._cond:
                if not self._queue:
                    continue  # another thread took it meanwhile
                kind, key, queued_at = self._queue.popleft()
                self._queued.discard((kind, key))
                self._running += 1
            self._execute(kind, key, queued_at)

    def _execute(self, kind: str, key: int, queued_at: float) -> None:
        """One job (counted in ``_running`` by the caller), timed."""
        started, cpu = time.monotonic(), time.thread_time()
        try:
            self._handlers[kind](key)
        except Exception:  # a failed job stays marked in the database: retried at start
            log.exception("job %s(%d) failed", kind, key)
        finally:
            ran, cpu = time.monotonic() - started, time.thread_time() - cpu
            with self._cond:
                self._running -= 1
                kept = self._times.setdefault(kind, deque(maxlen=_STATS_KEPT))
                kept.append((started - queued_at, ran, cpu))
                self._cpu_total[kind] = self._cpu_total.get(kind, 0.0) + cpu
                self._cond.notify_all()


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * (len(values) - 1) + 0.5))] if values else 0.0


def lower_priority(nice: int = 10) -> None:
    """Nice the calling thread (Linux: per thread) so request threads come first: the
    background threads of a service process (the audit refresh at 10; the scene checks
    at ``JOB_NICE``)."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not allowed
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
