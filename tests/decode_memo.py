"""Each photo decoded once while the developer-set unit runs, not three times.

`photocheck dedup` decodes the 133 photos, the service decodes each upload, and the
scene checks of uploads past the pending-image bound decode the stored original again
(~1.6 s of CPU a pass). ``decode`` is a pure function of the bytes and its limits, so
its result is memoised by the SHA-256 of exactly those inputs; the arrays are made
read-only (a caller that wrote into them would fail, not see another's pixels). Errors
are not memoised. The memo (~3 MB a photo) is only consulted inside ``active()`` and is
cleared once the service's uploads are scored.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from photocheck import pipeline
from photocheck.decode import DecodedPhoto, decode
from photocheck.similarity import dedup
from photocheck.store import scenes

USERS = (dedup, pipeline, scenes)  # the modules that call ``decode`` by name


class DecodeMemo:
    def __init__(self) -> None:
        self._memo: dict[bytes, DecodedPhoto] = {}
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def __call__(self, data: bytes, **limits: Any) -> DecodedPhoto:
        key = hashlib.sha256(data).digest() + repr(sorted(limits.items())).encode()
        with self._lock:
            found = self._memo.get(key)
            if found is not None:
                self.hits += 1
                return found
            self.misses += 1
        photo = decode(data, **limits)
        photo.rgb.setflags(write=False)
        photo.grey.setflags(write=False)
        with self._lock:
            return self._memo.setdefault(key, photo)

    @contextlib.contextmanager
    def active(self) -> Iterator[DecodeMemo]:
        """``decode`` memoised for the callers of ``USERS`` inside the block."""
        with pytest.MonkeyPatch.context() as patch:
            for module in USERS:
                patch.setattr(module, "decode", self)
            yield self

    def clear(self) -> None:
        with self._lock:
            self._memo.clear()


@pytest.fixture(scope="session")
def decode_memo() -> Iterator[DecodeMemo]:
    """Filled by ``developer_dedup`` (tests/conftest.py) and the service's uploads of the
    same photos (tests/api/test_service_duplicates.py), which clears it when done."""
    memo = DecodeMemo()
    yield memo
    memo.clear()
