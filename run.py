#!/usr/bin/env python3
"""Set up and run photocheck with nothing but Python 3.11.

    python3 run.py serve [ARGS...]   # create .venv, install, start the service
    python3 run.py test  [ARGS...]   # create .venv, install with test extras, run pytest
    python3 run.py photocheck ARGS   # any photocheck command inside the venv

The virtual environment is (re)built only when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("PHOTOCHECK_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def _ensure_env() -> None:
    stamp = VENV / ".photocheck-installed"
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == want:
        return
    if not (BIN / "python").exists():
        print(f"creating {VENV}", file=sys.stderr)
        venv.create(VENV, with_pip=True)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[test]"], check=True)
    stamp.write_text(want)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"serve", "test", "photocheck"}:
        print(__doc__, file=sys.stderr)
        return 2
    _ensure_env()
    cmd, rest = argv[0], argv[1:]
    if cmd == "test":
        args = [str(BIN / "python"), "-m", "pytest", *rest]
    elif cmd == "serve":
        args = [str(BIN / "photocheck"), "serve", *rest]
    else:
        args = [str(BIN / "photocheck"), *rest]
    return subprocess.call(args, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
