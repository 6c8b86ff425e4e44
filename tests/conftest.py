"""Shared fixtures: the real photos of ../shared/data, the policy and the model.

The photos are never copied into the repo; PHOTOCHECK_TEST_DATA points elsewhere.
"""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from photocheck import ContentModel, Policy, Report, check_photo, default_policy
from photocheck.similarity.dedup import Pair, dedup_entries, load_entries
from tests.content_memo import content_memo  # noqa: F401 - the content model once per input
from tests.decode_memo import DecodeMemo, decode_memo  # noqa: F401 - a photo decoded once
from tests.feature_memo import xfeat_feature_memo  # noqa: F401 - XFeat once per image
from tests.processes import die_with_parent, stop_zygote
from tests.s3 import s3_bucket, seaweedfs  # noqa: F401 - the real S3 server's fixtures

ROOT = Path(__file__).resolve().parent.parent
MYPY_RUN = pytest.StashKey["MypyRun"]()
DATA = Path(os.environ.get("PHOTOCHECK_TEST_DATA", ROOT.parent / "shared" / "data")).resolve()
_MYPY_DIR = "photocheck_mypy_dir"  # pytest-xdist: the folder every worker shares
_DIST = "photocheck_dist"  # pytest-xdist: the controller's --dist, for the workers

# mypy in a process group of its own, its output and exit code written to files: any
# pytest-xdist worker can read the result of the one run another worker started.
# Under CI (a clean clone, one run) no cache is read or written (39 MB nobody reads):
# cold 40.6 / 38.6 s of CPU against 42.5 / 39.9 s; by hand the cache stays, for the next
# run's few seconds.
_MYPY_WRAPPER = """
import os, subprocess, sys
out, rc = sys.argv[1:]
once = ["--no-incremental", "--cache-dir=/dev/null"] if os.environ.get("CI") == "true" else []
with open(out, "w") as fh:
    code = subprocess.call([sys.executable, "-m", "mypy", "--no-error-summary", *once],
                           stdout=fh, stderr=subprocess.STDOUT)
with open(rc + ".tmp", "w") as fh:
    fh.write(str(code))
os.replace(rc + ".tmp", rc)
"""


class MypyRun:
    """mypy over the tree, as configured in pyproject.toml, started in the background
    once per test run: with pytest-xdist the first worker to claim ``folder`` starts it
    and the others read its result."""

    def __init__(self, folder: Path) -> None:
        self.out, self.rc = folder / "mypy.out", folder / "mypy.rc"
        self.proc: subprocess.Popen[bytes] | None = None
        try:
            os.close(os.open(folder / "mypy.claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return  # another worker runs it
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _MYPY_WRAPPER, str(self.out), str(self.rc)],
            cwd=ROOT,
            start_new_session=True,  # stop() ends mypy with its wrapper
            preexec_fn=die_with_parent(),
        )

    def result(self, timeout: float = 600) -> tuple[int, str]:
        """mypy's exit code and output, once it has finished."""
        deadline = time.monotonic() + timeout
        while not self.rc.exists():
            assert time.monotonic() < deadline, "mypy did not finish"
            time.sleep(0.2)
        return int(self.rc.read_text()), self.out.read_text()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


_SHARED_DIR = pytest.StashKey[str]()


class _XdistHooks:
    """Registered only with pytest-xdist installed (an unknown hook would be an error)."""

    @staticmethod
    def pytest_configure_node(node: Any) -> None:  # the controller, for each worker
        node.workerinput[_MYPY_DIR] = node.config.stash[_SHARED_DIR]
        node.workerinput[_DIST] = node.config.getoption("dist")

    @staticmethod
    def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
        """``--dist loadfile`` (what run.py asks for): tests/xdist_schedule.py's units."""
        if config.getoption("dist") != "loadfile":
            return None
        from tests.xdist_schedule import SuiteScheduling

        return SuiteScheduling(config, log)


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the run itself (or xdist's controller)
        config.stash[_SHARED_DIR] = tempfile.mkdtemp(prefix="photocheck-run-")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under run.py's ``--dist loadfile``: the long units first (tests/xdist_schedule.py).
    Start mypy as soon as the run is known to include test_mypy: it then overlaps the
    other tests instead of adding its cold run to the end."""
    if getattr(config, "workerinput", {}).get(_DIST) == "loadfile":  # the same order in each
        from tests.xdist_schedule import order_long_first

        order_long_first(items)
    if any(item.name == "test_mypy" for item in items):
        folder = getattr(config, "workerinput", {}).get(_MYPY_DIR) or config.stash[_SHARED_DIR]
        config.stash[MYPY_RUN] = MypyRun(Path(folder))


def pytest_unconfigure(config: pytest.Config) -> None:
    stop_zygote()  # the service processes' forkserver (tests/processes.py), reaped
    run = config.stash.get(MYPY_RUN, None)
    if run is not None and run.proc is not None:
        if hasattr(config, "workerinput"):  # another worker may still need the result
            with contextlib.suppress(AssertionError):
                run.result()
        run.stop()  # the run stopped before test_mypy
    if _SHARED_DIR in config.stash:
        shutil.rmtree(config.stash[_SHARED_DIR], ignore_errors=True)


@dataclass(frozen=True)
class Expectation:
    relpath: str
    verdict: str  # reject | not_reject | -
    all_of: frozenset[str]
    none_of: frozenset[str]
    any_of: frozenset[str]


def _codes(cell: str) -> frozenset[str]:
    return frozenset(c for c in cell.split(",") if c)


def load_expectations() -> list[Expectation]:
    path = DATA / "EXPECTED.tsv"
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as fh:
        return [
            Expectation(
                r["relpath"],
                r["verdict"],
                _codes(r["all_of"]),
                _codes(r["none_of"]),
                _codes(r["any_of"]),
            )
            for r in csv.DictReader(fh, delimiter="\t")
        ]


def load_duplicate_pairs(name: str = "DUPLICATES.tsv") -> list[tuple[str, str, str]]:
    path = DATA / name
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as fh:
        return [(r["a"], r["b"], r["relation"]) for r in csv.DictReader(fh, delimiter="\t")]


DEVELOPER_SETS = ("DUPLICATES.tsv", "scenes/DUPLICATES.tsv")  # issue 11's developer set


def developer_files() -> list[str]:
    """Every photo of a labelled pair of the developer set (relative to DATA)."""
    return sorted(
        {p for name in DEVELOPER_SETS for a, b, _ in load_duplicate_pairs(name) for p in (a, b)}
    )


@pytest.fixture(scope="session")
def developer_dedup(decode_memo: DecodeMemo) -> dict[frozenset[str], Pair]:  # noqa: F811
    """`photocheck dedup`'s pairs over the developer set's photos, computed once a session
    (tests/test_dedup.py scores them; tests/api/test_service_duplicates.py compares the
    service with them)."""
    names = developer_files()
    if not names:
        pytest.skip("no developer set")
    with decode_memo.active():  # the service's test uploads the same photos
        entries = load_entries([data_file(n) for n in names], policy=default_policy(), names=names)
    assert len(entries) == len(names)
    return {frozenset((p.a, p.b)): p for p in dedup_entries(entries, policy=default_policy())}


def data_file(relpath: str) -> Path:
    path = DATA / relpath
    if not path.exists():
        pytest.fail(f"test photo missing: {path} (set PHOTOCHECK_TEST_DATA)")
    return path


@pytest.fixture(scope="session")
def policy() -> Policy:
    return default_policy()


@pytest.fixture(scope="session")
def model() -> ContentModel:
    return ContentModel()


@pytest.fixture(scope="session")
def reports(policy: Policy, model: ContentModel) -> dict[str, Report]:
    """Reports of data files, computed once per session on first use."""
    return _ReportCache(policy, model)


class _ReportCache(dict):
    def __init__(self, policy: Policy, model: ContentModel) -> None:
        super().__init__()
        self.policy, self.model = policy, model

    def __missing__(self, relpath: str) -> Report:
        report = check_photo(data_file(relpath).read_bytes(), policy=self.policy, model=self.model)
        self[relpath] = report
        return report
