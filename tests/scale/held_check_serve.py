"""``python -m tests.scale.held_check_serve serve ...``: the service's own command line,
whose photo check never returns: an upload claims its ``Idempotency-Key`` and then
stops for good inside the check, so a test kills the process while a photo is being
checked, at a known point, without timing (it used a decompression bomb that took
seconds of CPU to decode, twice per database)."""

from __future__ import annotations

import sys
import threading
from typing import Any

from api.cli import main
from api.routes import photos


def _held_check(*args: Any, **kwargs: Any) -> Any:
    threading.Event().wait()  # held until the test kills the process
    raise AssertionError("unreachable")


photos.check_photo = _held_check

if __name__ == "__main__":
    sys.exit(main())
