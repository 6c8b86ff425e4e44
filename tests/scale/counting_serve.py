"""``python -m tests.scale.counting_serve serve ...``: the service's own command line,
with every photo check (the real one) counted as a line in the file named by
``PHOTOCHECK_TEST_CHECK_LOG``, so a test counts checks across worker processes."""

from __future__ import annotations

import os
import sys
from typing import Any

from api.cli import main
from api.routes import photos

_real_check = photos.check_photo


def _counted_check(*args: Any, **kwargs: Any) -> Any:
    with open(os.environ["PHOTOCHECK_TEST_CHECK_LOG"], "a") as log:
        log.write(f"{os.getpid()}\n")
    return _real_check(*args, **kwargs)


photos.check_photo = _counted_check

if __name__ == "__main__":
    sys.exit(main())
