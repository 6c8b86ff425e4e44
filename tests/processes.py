"""Child processes that die with the test process that started them, and service
processes forked from a zygote that has imported the service once.

A test stops what it starts, but a pytest-xdist worker that is itself killed (a crash,
a timeout, ^C twice) runs no teardown: its SeaweedFS and ``photocheck serve`` children
would live on, holding ports, disk and CPU. ``die_with_parent`` (a ``preexec_fn``) asks
Linux to SIGKILL the child when the thread that started it ends
(``PR_SET_PDEATHSIG``); elsewhere it does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import multiprocessing
import multiprocessing.context
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

__all__ = ["ServiceProcess", "die_with_parent", "stop_zygote"]

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


# Service processes forked from a zygote. Each `photocheck serve` the suite starts is a
# process of its own (its own pid, memory, sockets; kill -9 kills it and nothing else),
# but starting one with `python -m api.cli` spends ~2.5 s of CPU importing fastapi,
# sqlalchemy, onnxruntime, cv2, faiss, alembic and pgqueuer before it does anything.
# multiprocessing's forkserver imports them once per test process and forks each
# service from there; the child then runs the service's own command line (`main`).
# The forkserver only imports: no threads, no model, no database (forking after those
# would copy state a fresh process does not have). Its children die with it, and it
# dies with the test process.
_PRELOAD = ["api.cli", "api.server", "api.main", "api.migrate", "photocheck.jobs", "uvicorn",
            "psycopg", "pgqueuer.qm"]  # fmt: skip


def _context() -> multiprocessing.context.ForkServerContext:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def _run_main(module: str, args: list[str], env: dict[str, str], log: str, cwd: str) -> None:
    """The child: the environment, folder and output of a new process, then
    ``module.main(args)`` as ``python -m module ARGS`` would run it."""
    if _prctl is not None:  # dies with the forkserver (which dies with the test process)
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    sys.argv = [module, *args]
    sys.exit(importlib.import_module(module).main(args))


class ServiceProcess:
    """``python -m MODULE ARGS`` (``MODULE.main(ARGS)``) as a separate OS process forked
    from the preloaded zygote, with the ``subprocess.Popen`` calls the tests use."""

    def __init__(
        self, module: str, args: list[str], env: dict[str, str], log: Path, cwd: Path
    ) -> None:
        self._proc = _context().Process(
            target=_run_main, args=(module, args, env, str(log), str(cwd)), daemon=True
        )
        self._proc.start()
        assert self._proc.pid is not None
        self.pid: int = self._proc.pid

    @property
    def returncode(self) -> int | None:
        """As Popen's: the exit status, or minus the signal that ended it."""
        return self._proc.exitcode

    def poll(self) -> int | None:
        return self._proc.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._proc.join(timeout)
        if self._proc.exitcode is None:
            raise subprocess.TimeoutExpired(self._proc.name, timeout or 0)
        return self._proc.exitcode

    def send_signal(self, sig: int) -> None:
        """As Popen's: nothing once it has exited. The forkserver, not this process,
        reaps it, so it can be gone before ``exitcode`` says so (a terminate of a
        process that just exited by itself)."""
        if self._proc.exitcode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def stop_zygote() -> None:
    """End the forkserver, if one was started, and reap it: the CPU of the services it
    forked then counts in this process's (``getrusage``, ``time``)."""
    from multiprocessing import forkserver

    stop = getattr(forkserver._forkserver, "_stop", None)  # private: no public way
    if stop is not None:
        stop()
