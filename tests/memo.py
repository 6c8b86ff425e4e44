"""A bounded, thread-safe memo of a pure function's results: the decode and content
model memos of the suite (``decode_memo``, ``content_memo``) share it."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class BoundedMemo(Generic[V]):
    """Results by key, the least recently used evicted past ``limit`` (unless
    ``unbounded``); made outside the lock, so a second caller of the same key may make
    it too, and the first stored wins (both are equal: the function is pure)."""

    def __init__(self, limit: int) -> None:
        self._memo: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()
        self.limit = limit
        self.unbounded = 0  # blocks open in which nothing is evicted
        self.hits = self.misses = 0

    def get(self, key: Hashable, make: Callable[[], V]) -> V:
        with self._lock:
            found = self._memo.get(key)
            if found is not None:
                self._memo.move_to_end(key)
                self.hits += 1
                return found
            self.misses += 1
        made = make()
        with self._lock:
            found = self._memo.setdefault(key, made)
            while not self.unbounded and len(self._memo) > self.limit:
                self._memo.popitem(last=False)
            return found

    def set_unbounded(self, delta: int) -> None:
        with self._lock:
            self.unbounded += delta

    def clear(self) -> None:
        with self._lock:
            self._memo.clear()
