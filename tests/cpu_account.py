"""Opt-in: the suite's CPU per test module, with every process each test started.

    python3 run.py test -p tests.cpu_account            # writes $CPU_ACCOUNT_DIR/*.json
    python -m tests.cpu_account DIR [N]                 # the top N modules and tests

The suite is CPU-bound (its wall time is about its CPU over the cores), but pytest's
``--durations`` measure wall time, and ``RUSAGE_CHILDREN`` of a test process misses
the service processes forked from the zygote (tests/processes.py: their parent is the
forkserver) and everything still running. So before and after each test this reads
``/proc/PID/stat`` of the xdist worker and every live descendant (user + system time,
with their reaped children's): the difference is the test's, setup and teardown
included. Not seen: the shared PostgreSQL's backends (not our processes; their total
is reported once), and a background process's CPU lands on whichever test runs
beside it (mypy's, started at collection, is left out until it is reaped).
"""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict
from collections.abc import Generator
from pathlib import Path

import pytest

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_by_module: defaultdict[str, float] = defaultdict(float)
_by_test: defaultdict[str, float] = defaultdict(float)
_mypy: dict[int, bool] = {}
_postgres_at_start: list[float] = []


def _processes() -> dict[int, tuple[int, float, str]]:
    """{pid: (parent pid, CPU seconds with reaped children, command name)}."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:  # ended meanwhile
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        cpu = sum(int(x) for x in fields[11:15]) / TICK  # utime stime cutime cstime
        found[int(name)] = (int(fields[1]), cpu, comm)
    return found


def _is_mypy(pid: int) -> bool:
    if pid not in _mypy:
        try:
            _mypy[pid] = b"mypy" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            _mypy[pid] = False
    return _mypy[pid]


def tree_cpu() -> float:
    """CPU seconds of this process and its live descendants (mypy's run left out)."""
    procs = _processes()
    children: defaultdict[int, list[int]] = defaultdict(list)
    for pid, (parent, _, _) in procs.items():
        children[parent].append(pid)
    total, todo = 0.0, [os.getpid()]
    while todo:
        pid = todo.pop()
        if pid in procs:
            if pid != os.getpid() and _is_mypy(pid):
                continue
            total += procs[pid][1]
        todo.extend(children.get(pid, ()))
    return total


def _postgres_cpu() -> float:
    return sum(cpu for _, cpu, comm in _processes().values() if comm.startswith("postgres"))


def pytest_sessionstart(session: pytest.Session) -> None:
    _postgres_at_start.append(_postgres_cpu())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, None, None]:
    before = tree_cpu()
    yield
    spent = tree_cpu() - before
    _by_module[item.nodeid.split("::", 1)[0]] += spent
    _by_test[item.nodeid] += spent


def pytest_sessionfinish(session: pytest.Session) -> None:
    folder = os.environ.get("CPU_ACCOUNT_DIR")
    if not folder:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    out = {"modules": _by_module, "tests": _by_test, "session": tree_cpu()}
    if worker == "main":  # the controller (or a run without xdist)
        out["postgres"] = _postgres_cpu() - _postgres_at_start[0]
    Path(folder, f"{worker}-{os.getpid()}.json").write_text(json.dumps(out))


def report(folder: Path, top: int = 15) -> None:
    modules: defaultdict[str, float] = defaultdict(float)
    tests: defaultdict[str, float] = defaultdict(float)
    workers = 0.0
    for path in folder.glob("*.json"):
        data = json.loads(path.read_text())
        if path.name.startswith("main-"):  # the controller (or a run without xdist)
            print(f"whole run (the first process's tree): {data['session']:.1f} s", end="")
            print(f"; PostgreSQL backends: {data.get('postgres', 0.0):.1f} s")
        else:
            workers += data["session"]
        for name, cpu in data["modules"].items():
            modules[name] += cpu
        for name, cpu in data["tests"].items():
            tests[name] += cpu
    print(f"xdist workers: {workers:.1f} s; in tests: {sum(modules.values()):.1f} s")
    for title, table in (("modules", modules), ("tests", tests)):
        print(f"-- top {top} {title} (CPU s)")
        for name, cpu in sorted(table.items(), key=lambda kv: -kv[1])[:top]:
            print(f"{cpu:7.1f}  {name}")


if __name__ == "__main__":
    report(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 15)
