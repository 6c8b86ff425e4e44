"""The tree stays ruff-clean (lint and format), so CI catches what a commit forgot."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import MYPY_RUN, MypyRun

ROOT = Path(__file__).resolve().parent.parent


def _ruff() -> list[str]:
    exe = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if exe is None:
        pytest.fail("ruff is not installed (it is in the test extra)")
    return [exe]


@pytest.mark.parametrize(
    "args", [["check", "."], ["format", "--check", "."]], ids=["lint", "format"]
)
def test_ruff(args: list[str]) -> None:
    proc = subprocess.run(
        [*_ruff(), *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Zero mypy errors over the files pyproject.toml names (photocheck, api, tests,
    scripts). The check started in the background at collection (see conftest), so its
    ~40 s cold run overlaps the rest of the suite on the second core."""
    run = request.config.stash.get(MYPY_RUN, None) or MypyRun(tmp_path)
    try:
        code, out = run.result()
    finally:
        run.stop()
    assert code == 0, out
