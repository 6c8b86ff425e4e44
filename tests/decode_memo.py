"""Each photo decoded once per test process, not once per upload.

``decode`` is a pure function of the bytes and its limits, and the suite feeds the
same real photos to its in-process servers again and again (a campaign's uploads, the
scene checks of uploads past the pending-image bound, the audit's thumbnails and
previews): ~70 ms of CPU for a 12 MP JPEG, most of an upload's check. Its result is
memoised by the SHA-256 of exactly those inputs; the arrays are made read-only (a
caller that wrote into them would fail, not see another's pixels). Errors are not
memoised, so every refusal is decoded (and refused) again.

The session's memo (``SESSION_USERS``, the service's modules) keeps the last
``SESSION_LIMIT`` photos (~3 MB each). Tests of ``decode`` itself call it directly, and
`photocheck dedup` (``similarity.dedup``) decodes for real outside ``active()``.
Inside ``active()`` (the developer-set unit: `photocheck dedup`, then the service's
uploads of the same 133 photos) nothing is evicted and ``dedup`` is memoised too; the
unit clears the memo when it is done.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from typing import Any

import pytest

from photocheck import pipeline
from photocheck.audit import previews, storage
from photocheck.decode import DecodedPhoto, decode
from photocheck.similarity import dedup
from photocheck.store import scenes
from tests.memo import BoundedMemo

SESSION_USERS = (pipeline, scenes, storage, previews)  # call ``decode`` by name
UNIT_USERS = (dedup,)  # memoised only inside ``active()``
SESSION_LIMIT = 48  # photos kept outside ``active()``, least recently used evicted


class DecodeMemo(BoundedMemo[DecodedPhoto]):
    def __init__(self, limit: int = SESSION_LIMIT) -> None:
        super().__init__(limit)

    def __call__(self, data: bytes, **limits: Any) -> DecodedPhoto:
        key = hashlib.sha256(data).digest() + repr(sorted(limits.items())).encode()

        def make() -> DecodedPhoto:
            photo = decode(data, **limits)
            photo.rgb.setflags(write=False)
            photo.grey.setflags(write=False)
            return photo

        return self.get(key, make)

    @contextlib.contextmanager
    def active(self) -> Iterator[DecodeMemo]:
        """Nothing evicted inside the block, and ``UNIT_USERS`` memoised too."""
        with pytest.MonkeyPatch.context() as patch:
            for module in UNIT_USERS:
                patch.setattr(module, "decode", self)
            self.set_unbounded(+1)
            try:
                yield self
            finally:
                self.set_unbounded(-1)


@pytest.fixture(scope="session", autouse=True)
def decode_memo() -> Iterator[DecodeMemo]:
    """``decode`` memoised for ``SESSION_USERS`` in the whole session; filled without
    bound by ``developer_dedup`` (tests/conftest.py) and the service's uploads of the
    same photos (tests/api/test_service_duplicates.py), which clears it when done."""
    memo = DecodeMemo()
    with pytest.MonkeyPatch.context() as patch:
        for module in SESSION_USERS:
            patch.setattr(module, "decode", memo)
        yield memo
    memo.clear()
