"""Disjoint sets, for grouping photos linked pairwise into clusters."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable

__all__ = ["UnionFind"]


class UnionFind:
    """Union by size with path halving; items are added on first sight."""

    def __init__(self) -> None:
        self._parent: dict[Hashable, Hashable] = {}
        self._size: dict[Hashable, int] = {}

    def find(self, x: Hashable) -> Hashable:
        parent = self._parent
        if x not in parent:
            parent[x], self._size[x] = x, 1
            return x
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a: Hashable, b: Hashable) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self._size[ra] < self._size[rb]:
            ra, rb = rb, ra
        self._parent[rb] = ra
        self._size[ra] += self._size[rb]

    def groups(self) -> list[list]:
        """Every set with its members in insertion order."""
        out: dict[Hashable, list] = defaultdict(list)
        for x in self._parent:
            out[self.find(x)].append(x)
        return list(out.values())
