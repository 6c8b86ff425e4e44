"""Child processes that die with the test process that started them.

A test stops what it starts, but a pytest-xdist worker that is itself killed (a crash,
a timeout, ^C twice) runs no teardown: its SeaweedFS and ``photocheck serve`` children
would live on, holding ports, disk and CPU. ``die_with_parent`` (a ``preexec_fn``) asks
Linux to SIGKILL the child when the thread that started it ends
(``PR_SET_PDEATHSIG``); elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable

__all__ = ["die_with_parent"]

_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` for ``subprocess.Popen``, or None (not Linux, or not the main
    thread: the signal follows the starting thread, and a helper thread may end first)."""
    if _prctl is None or threading.current_thread() is not threading.main_thread():
        return None
    parent = os.getpid()
    prctl = _prctl

    def preexec() -> None:  # in the child, between fork and exec: nothing that allocates
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the prctl
            os._exit(1)

    return preexec
