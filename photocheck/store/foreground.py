"""The foreground gate: background threads of a serve process wait while uploads run.

Niced threads get less CPU, but not less of the GIL: a scene check or an audit refresh
that takes the GIL and is then preempted by the kernel (it is niced, so that happens
often on a busy machine) stalls every request thread of the process until the kernel
runs it again. So the embedded default's background work does not start while
uploads are in flight: a job waits until the process has been free of uploads for
``QUIET_S``, or ``MAX_HOLD_S`` at most (a sustained load does not starve the checks;
they are then niced as before). A job already running is not interrupted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["MAX_HOLD_S", "QUIET_S", "Foreground"]

QUIET_S = 0.25  # no upload for this long: background work may start
MAX_HOLD_S = 10.0  # a waiting job starts after this long whatever the load


class Foreground:
    """Counts the uploads in flight; ``wait_quiet`` holds a background thread back."""

    def __init__(self, quiet_s: float = QUIET_S, max_hold_s: float = MAX_HOLD_S) -> None:
        self.quiet_s, self.max_hold_s = quiet_s, max_hold_s
        self._cond = threading.Condition()
        self._busy = 0
        self._last = 0.0  # monotonic time the last upload ended
        self.held_s = 0.0  # seconds background threads waited in all (benchmarks)

    @contextmanager
    def busy(self) -> Iterator[None]:
        """Around a request's work: background work waits until it is over."""
        with self._cond:
            self._busy += 1
        try:
            yield
        finally:
            with self._cond:
                self._busy -= 1
                self._last = time.monotonic()
                if self._busy == 0:  # only then can a waiter's quiet time start
                    self._cond.notify_all()

    def wait_quiet(self) -> float:
        """Block until no upload ran for ``quiet_s`` (at most ``max_hold_s``); returns
        the seconds waited."""
        started = time.monotonic()
        deadline = started + self.max_hold_s
        with self._cond:
            while True:
                now = time.monotonic()
                if now >= deadline:
                    break
                if self._busy == 0:
                    quiet_at = self._last + self.quiet_s
                    if now >= quiet_at:
                        break
                    self._cond.wait(min(quiet_at, deadline) - now)
                else:
                    self._cond.wait(deadline - now)
            waited = time.monotonic() - started
            self.held_s += waited
        return waited
