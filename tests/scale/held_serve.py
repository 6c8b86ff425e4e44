"""``python -m tests.scale.held_serve serve ...``: the service's own command line, whose
re-check job thread stops for good before it saves batch number
``PHOTOCHECK_TEST_RECHECK_HOLD_AT`` (1-based; its photos are checked, their verdicts not
written), so a test kills the process mid-run at a known point, without timing."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

from api.cli import main
from photocheck.recheck.runs import Recheck

_real_save = Recheck._save
_saves = 0
_lock = threading.Lock()


def _held_save(self: Recheck, *args: Any, **kwargs: Any) -> None:
    global _saves
    with _lock:
        _saves += 1
        n = _saves
    if n >= int(os.environ["PHOTOCHECK_TEST_RECHECK_HOLD_AT"]):
        with open(os.environ["PHOTOCHECK_TEST_RECHECK_HELD"], "w") as flag:
            flag.write(f"{n}\n")
        threading.Event().wait()  # held until the test kills the process
    _real_save(self, *args, **kwargs)


Recheck._save = _held_save  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main())
