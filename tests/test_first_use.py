"""First use: run.py says what it does while it installs, and a relative data folder
means the directory the user typed the command in, resolved once."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import py_compile
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from api.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def _run_py(monkeypatch: pytest.MonkeyPatch, venv_dir: Path) -> ModuleType:
    monkeypatch.setenv("PHOTOCHECK_VENV", str(venv_dir))
    spec = importlib.util.spec_from_file_location("run_py_under_test", ROOT / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_py_says_what_it_does_while_installing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _run_py(monkeypatch, tmp_path / "venv")
    calls: list[list[str]] = []

    def fake_run(args: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(args)
        print(f"<pip {args[-1]}>", file=sys.stderr)  # where pip's own time goes
        return subprocess.CompletedProcess(args, 0)

    monkeypatch.setattr(run.venv, "create", lambda *a, **k: None)
    monkeypatch.setattr(run.subprocess, "run", fake_run)
    (tmp_path / "venv").mkdir()
    run._ensure_env()
    err = capsys.readouterr().err
    assert len(calls) == 2
    creating = err.index("creating the virtual environment")
    updating = err.index("updating pip")
    installing = err.index("installing photocheck")
    assert creating < updating < err.index("<pip pip>") < installing < err.rindex("<pip ")
    assert "installed in" in err.splitlines()[-1]
    run._ensure_env()  # the stamp matches: nothing to do, nothing said
    assert capsys.readouterr().err == "" and len(calls) == 2


def test_run_py_resolves_relative_paths_against_the_callers_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    run = _run_py(monkeypatch, tmp_path / "venv")
    env = run.child_env(
        {"PHOTOCHECK_DATA_DIR": "mydata", "PHOTOCHECK_POLICY": "/abs/p.toml"}, tmp_path
    )
    assert env["PHOTOCHECK_DATA_DIR"] == str(tmp_path / "mydata")
    assert env["PHOTOCHECK_POLICY"] == "/abs/p.toml"
    assert run.child_env({}, tmp_path)["PHOTOCHECK_DATA_DIR"] == str(ROOT / "data")


def test_settings_resolve_a_relative_data_dir_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    monkeypatch.setenv("PHOTOCHECK_DATA_DIR", "data")
    settings = Settings()
    monkeypatch.chdir(tmp_path / "b")  # later cwd changes move nothing
    assert tmp_path / "a" / "data" == settings.DATA_DIR
    assert settings.database_url == f"sqlite:///{tmp_path / 'a' / 'data' / 'photocheck.sqlite3'}"
    assert os.path.isabs(settings.blob_config().data_dir)


def test_run_py_test_uses_every_core_unless_told(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    run = _run_py(monkeypatch, tmp_path / "venv")
    assert run.test_args([]) == ["-n", str(run.xdist_workers()), "--dist", "loadfile"]
    assert run.xdist_workers() >= 2
    assert run.test_args(["tests/test_cli.py"])[-1] == "tests/test_cli.py"
    for chosen in (["-n", "0"], ["-n2"], ["--numprocesses=3"], ["-p", "no:xdist"]):
        assert run.test_args(chosen) == chosen


def test_run_py_test_caches_bytecode_outside_the_checkout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    run = _run_py(monkeypatch, tmp_path / "venv")
    env = run.test_env({"PYTHONDONTWRITEBYTECODE": "1", "PATH": "/bin"})
    assert "PYTHONDONTWRITEBYTECODE" not in env and env["PATH"] == "/bin"
    assert env["PYTHONPYCACHEPREFIX"] == str(ROOT / ".venv" / "pycache")
    plain = run.test_env({"PATH": "/bin"})
    assert plain == {"PATH": "/bin", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", **run.SUITE_THREADS}
    assert plain["OMP_NUM_THREADS"] == "1"  # one thread per library call: xdist fills the cores
    assert run.test_env({"OMP_NUM_THREADS": "2"})["OMP_NUM_THREADS"] == "2"  # unless chosen
    chosen = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": str(tmp_path)}
    assert run.test_env(chosen)["PYTHONPYCACHEPREFIX"] == str(tmp_path)


def test_run_py_test_seeds_the_bytecode_cache_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The installed packages' bytecode and ours are where Python reads them under the
    prefix before the suite starts; test modules are left to pytest's own cache."""
    venv_dir = tmp_path / "venv"
    run = _run_py(monkeypatch, venv_dir)
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    site = venv_dir / "lib" / version / "site-packages"
    (site / "pkg").mkdir(parents=True)
    (site / "pkg" / "mod.py").write_text("X = 1\n")
    installed_pyc = site / "pkg" / "__pycache__" / f"mod.{sys.implementation.cache_tag}.pyc"
    py_compile.compile(str(site / "pkg" / "mod.py"), cfile=str(installed_pyc), doraise=True)
    (site / "pkg" / "__pycache__" / "mod.cpython-0.pyc").write_bytes(b"other version")
    (venv_dir / ".photocheck-installed").write_text("install 1")
    checkout = tmp_path / "checkout"
    (checkout / "tests").mkdir(parents=True)
    for name in ("helper.py", "test_thing.py", "conftest.py"):
        (checkout / "tests" / name).write_text("Y = 2\n")
    monkeypatch.setattr(run, "ROOT", checkout)
    monkeypatch.setattr(run.sysconfig, "get_paths", lambda: {"stdlib": str(tmp_path / "none")})
    prefix = tmp_path / "pycache"

    run.seed_bytecode(prefix)

    monkeypatch.setattr(sys, "pycache_prefix", str(prefix))  # where the suite will look
    seeded = Path(importlib.util.cache_from_source(str(site / "pkg" / "mod.py")))
    assert seeded.read_bytes() == installed_pyc.read_bytes()
    assert Path(importlib.util.cache_from_source(str(checkout / "tests" / "helper.py"))).exists()
    for rewritten in ("test_thing.py", "conftest.py"):
        assert not Path(
            importlib.util.cache_from_source(str(checkout / "tests" / rewritten))
        ).exists()
    assert not list(prefix.rglob("mod.cpython-0.pyc"))
    seeded.unlink()
    run.seed_bytecode(prefix)  # done for this install: nothing again
    assert not seeded.exists()
    (venv_dir / ".photocheck-installed").write_text("install 2")
    run.seed_bytecode(prefix)  # a new install: seeded again
    assert seeded.exists()


def test_run_py_test_names_every_pytest_plugin_installed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without autoloading, a plugin of the test extras missing from ``SUITE_PLUGINS``
    would silently not run: each installed one is named, or blocked in pyproject.toml."""
    run = _run_py(monkeypatch, tmp_path / "venv")
    assert run.test_env({})["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] == "1"
    assert run.plugin_args() == [a for n in run.SUITE_PLUGINS for a in ("-p", n)]
    addopts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
    blocked = set(re.findall(r"-p no:(\S+)", addopts["ini_options"]["addopts"]))
    installed = {
        (ep.name, ep.value)
        for dist in importlib.metadata.distributions()
        for ep in dist.entry_points
        if ep.group == "pytest11"
    }
    assert installed, "no pytest plugin found: not the suite's venv?"
    for name, module in installed:
        assert name in blocked or {name, module} & set(run.SUITE_PLUGINS), (name, module)
