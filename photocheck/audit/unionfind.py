"""Disjoint sets, for grouping photos linked pairwise into clusters.

``UnionFind`` for a few links given one by one; ``connected_components`` for many
links given as arrays, without Python per link.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable

import numpy as np

__all__ = ["UnionFind", "connected_components"]


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


def connected_components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Component label of each of ``n`` nodes linked by the edges ``a[k]``-``b[k]``:
    the smallest node of its component.

    Hooking and pointer jumping (Shiloach-Vishkin style): each round hooks every root
    onto the smallest label seen across its edges, then flattens the trees; the number
    of rounds grows with the logarithm of the component size, not with the edges.
    """
    label = np.arange(n, dtype=np.int64)
    if not len(a):
        return label
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    while True:
        la, lb = label[a], label[b]
        low = np.minimum(la, lb)
        new = label.copy()
        np.minimum.at(new, la, low)
        np.minimum.at(new, lb, low)
        while True:  # flatten: every node points at its root
            up = new[new]
            if np.array_equal(up, new):
                break
            new = up
        if np.array_equal(new, label):
            return label
        label = new
