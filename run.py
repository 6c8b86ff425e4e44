#!/usr/bin/env python3
"""Set up and run photocheck with nothing but Python 3.11.

    python3 run.py serve [ARGS...]   # create .venv, install, start the service
    python3 run.py test  [ARGS...]   # create .venv, install with test extras, run pytest
                                     # (on every CPU core: pytest-xdist; -n 0 for one process)
    python3 run.py photocheck ARGS   # any photocheck command inside the venv

The virtual environment is (re)built only when pyproject.toml changes. Commands run in
the directory you call them from, so relative paths (arguments, PHOTOCHECK_DATA_DIR,
PHOTOCHECK_POLICY, PHOTOCHECK_MODEL) mean what you typed; the data folder defaults to
data/ beside this file.
"""

from __future__ import annotations

import compileall
import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("PHOTOCHECK_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PATH_SETTINGS = ("PHOTOCHECK_DATA_DIR", "PHOTOCHECK_POLICY", "PHOTOCHECK_MODEL")


def _say(message: str) -> None:
    print(f"run.py: {message}", file=sys.stderr, flush=True)


def _ensure_env() -> None:
    stamp = VENV / ".photocheck-installed"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == want:
        return
    started = time.monotonic()
    if not (BIN / "python").exists():
        _say(f"creating the virtual environment {VENV}")
        venv.create(VENV, with_pip=True)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    _say("updating pip")
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    _say(
        "installing photocheck with its dependencies and test tools "
        "(first time: a few minutes, ~400 MB; later only when pyproject.toml changes)"
    )
    subprocess.run([*pip, "-e", f"{ROOT}[test]"], check=True)
    stamp.write_text(want)
    _say(f"installed in {time.monotonic() - started:.0f} s")


def child_env(environ: dict[str, str], cwd: Path) -> dict[str, str]:
    """The command's environment: relative path settings made absolute against the
    caller's directory (so they mean the same in every process the command starts), and
    the data folder beside the checkout unless one is given."""
    env = dict(environ)
    for name in PATH_SETTINGS:
        value = env.get(name)
        if value and not Path(value).expanduser().is_absolute():
            env[name] = str((cwd / Path(value).expanduser()).resolve())
    env.setdefault("PHOTOCHECK_DATA_DIR", str(ROOT / "data"))
    return env


# One thread per call inside OpenBLAS, faiss's OpenMP and OpenCV in the suite: its xdist
# workers already keep every core busy, and these pools only spin beside them (the
# developer-set unit: 75 -> 69 s of CPU, its sys time halved). Each call computes the
# same numbers, on one thread.
SUITE_THREADS = {"OMP_NUM_THREADS": "1", "OPENCV_FOR_THREADS_NUM": "1"}
# The test extras' pytest plugins, loaded by name (``-p``) with PYTEST_DISABLE_PLUGIN_AUTOLOAD:
# autoloading marks every module of each plugin's distribution for assertion rewriting,
# so each xdist worker of a clean clone parsed and rewrote hypothesis and schemathesis
# (~190 modules) again, cache or not (collection: 30.6 -> 25.8 s of CPU). schemathesis's
# plugin stays unloaded (pyproject.toml); tests/test_first_use.py checks the list.
SUITE_PLUGINS = ("xdist", "xdist.looponfail", "hypothesispytest", "anyio.pytest_plugin")


def test_env(environ: dict[str, str]) -> dict[str, str]:
    """The suite's environment: ``SUITE_THREADS`` unless chosen, the plugins named
    (``SUITE_PLUGINS``), and bytecode cached even
    where PYTHONDONTWRITEBYTECODE is set. The suite starts ~40 Python processes (xdist
    workers, servers, CLI runs), and each one compiled the project's sources again
    (~0.9 s of CPU). The cache then goes to ``.venv/pycache`` (PYTHONPYCACHEPREFIX), so
    the checkout stays as clean as asked."""
    env = {**SUITE_THREADS, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", **environ}
    if env.pop("PYTHONDONTWRITEBYTECODE", None):
        env.setdefault("PYTHONPYCACHEPREFIX", str(ROOT / ".venv" / "pycache"))
    return env


OUR_SOURCES = ("photocheck", "api", "tests", "scripts")
# in the interpreter's library folder, but never imported by the suite's venv
_NOT_THE_SUITES = {"site-packages", "dist-packages", "test", "idlelib", "tkinter", "lib2to3"}
_PYTEST_REWRITES = re.compile(r"(^|[/\\])(test_[^/\\]*|conftest)\.py$")  # its own cache


def seed_bytecode(prefix: Path) -> None:
    """Fill a fresh PYTHONPYCACHEPREFIX before the suite starts, once per install.

    Under a prefix Python reads bytecode only there, so the ``__pycache__`` folders of
    pip's install and of the interpreter's went unused: the suite's first processes
    (xdist's controller and workers, started together) each compiled every module they
    import again, ~7 s of CPU each (a clean clone's collection: 46 s of CPU, 20 s with
    the cache warm). That bytecode is linked into the prefix (copied across file
    systems; Python checks it against its source as always) and ours is compiled."""
    stamp = prefix / ".seeded"
    installed = VENV / ".photocheck-installed"
    want = installed.read_text() if installed.exists() else ""
    if os.name == "nt" or (stamp.exists() and stamp.read_text() == want):
        return
    tag = sys.implementation.cache_tag
    site = VENV / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    if tag is None or not site.is_dir():  # not the interpreter the venv was made with
        return
    started = time.monotonic()
    for top in (sysconfig.get_paths()["stdlib"], str(site)):
        for folder, subdirs, _ in os.walk(top):
            if folder == top and top != str(site):  # not the interpreter's own packages
                subdirs[:] = [d for d in subdirs if d not in _NOT_THE_SUITES]
            if os.path.basename(folder) == "__pycache__":
                _link_bytecode(Path(folder), prefix, f".{tag}.pyc")
    before, sys.pycache_prefix = sys.pycache_prefix, str(prefix)  # where compileall writes
    try:
        for name in OUR_SOURCES:
            if (ROOT / name).is_dir():
                compileall.compile_dir(ROOT / name, quiet=1, rx=_PYTEST_REWRITES, workers=0)
    finally:
        sys.pycache_prefix = before
    stamp.write_text(want)
    _say(f"bytecode cache ready in {time.monotonic() - started:.1f} s")


def _link_bytecode(cache: Path, prefix: Path, suffix: str) -> None:
    """``folder/__pycache__/name.TAG.pyc`` as ``prefix/folder/name.TAG.pyc``, where
    Python looks for it under a prefix (only this interpreter's, not optimised ones)."""
    target = prefix / str(cache.parent).lstrip(os.sep)
    target.mkdir(parents=True, exist_ok=True)
    for name in os.listdir(cache):
        dest = target / name
        if not name.endswith(suffix) or dest.exists():
            continue
        try:
            os.link(cache / name, dest)
        except OSError:  # another file system, or no hard links here
            shutil.copyfile(cache / name, dest)


def xdist_workers() -> int:
    """One pytest-xdist worker per CPU core and one more: much of the suite waits on the
    servers and worker processes it starts (2 cores: 8 min 01 s with 3 workers, 8 min
    48 s with 2, the same clean clone on a quiet machine)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return cores + 1


def test_args(args: list[str]) -> list[str]:
    """pytest's arguments: the suite on every CPU core (pytest-xdist, ``xdist_workers``),
    whole modules per worker so a module's shared server starts once, unless the caller
    chose (``-n 0``: one process)."""
    chosen = any(a == "-n" or a.startswith(("-n", "--numprocesses", "--dist")) for a in args)
    if chosen or "no:xdist" in args:
        return args
    return ["-n", str(xdist_workers()), "--dist", "loadfile", *args]


def plugin_args() -> list[str]:
    """``-p NAME`` for each of ``SUITE_PLUGINS`` (a later ``-p no:xdist`` still wins)."""
    return [arg for name in SUITE_PLUGINS for arg in ("-p", name)]


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"serve", "test", "photocheck"}:
        print(__doc__, file=sys.stderr)
        return 2
    _ensure_env()
    cmd, rest = argv[0], argv[1:]
    if cmd == "test":  # pytest finds its configuration and ../shared/data from the checkout
        env = test_env(dict(os.environ))
        if "PYTHONPYCACHEPREFIX" in env:
            seed_bytecode(Path(env["PYTHONPYCACHEPREFIX"]))
        return subprocess.call(
            [str(BIN / "python"), "-m", "pytest", *plugin_args(), *test_args(rest)],
            cwd=ROOT,
            env=env,
        )
    args = [str(BIN / "photocheck"), *(["serve"] if cmd == "serve" else []), *rest]
    return subprocess.call(args, env=child_env(dict(os.environ), Path.cwd()))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
