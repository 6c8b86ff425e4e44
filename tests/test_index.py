"""PackedPDQIndex against the brute-force oracle, removals, and the upload race."""

from __future__ import annotations

import threading
from typing import cast

import numpy as np
import pytest

from photocheck.similarity.index import BruteForceIndex, Match, PackedPDQIndex, popcount64


def _flip(rng: np.random.Generator, h: bytes, bits: int) -> bytes:
    arr = np.unpackbits(np.frombuffer(h, dtype=np.uint8))
    arr[rng.choice(256, size=bits, replace=False)] ^= 1
    return np.packbits(arr).tobytes()


def _random(rng: np.random.Generator, n: int) -> list[bytes]:
    return [bytes(r) for r in rng.integers(0, 256, size=(n, 32), dtype=np.uint8)]


def _pairs(matches: list[Match]) -> set[tuple[int, int]]:
    return {(cast(int, m.key), m.distance) for m in matches}


@pytest.mark.parametrize("n", [500, 70_000])  # full scan, and the multi-index tables
def test_matches_oracle_with_planted_neighbours(n: int) -> None:
    rng = np.random.default_rng(n)
    hashes = _random(rng, n)
    fast, oracle = PackedPDQIndex(), BruteForceIndex()
    fast.add_many(list(range(n)), hashes)
    for k in rng.choice(n, size=min(n, 400), replace=False):  # the oracle is slow
        oracle.add(int(k), hashes[k])
    subset = {cast(int, k) for k in oracle._hashes}
    for radius in (0, 8, 15, 16, 31, 32, 47, 48, 70):
        for _ in range(3):
            target = int(rng.choice(sorted(subset)))
            q = _flip(rng, hashes[target], int(rng.integers(0, radius + 1)))
            others = _random(rng, 3)
            want = _pairs(oracle.query([q, *others], radius))
            got = {p for p in _pairs(fast.query([q, *others], radius)) if p[0] in subset}
            assert got == want, (n, radius)
            assert target in {k for k, _ in got}


def test_variant_reported() -> None:
    rng = np.random.default_rng(1)
    hashes = _random(rng, 10)
    index = PackedPDQIndex()
    index.add_many(list(range(10)), hashes)
    (m,) = index.query([_random(rng, 1)[0], _flip(rng, hashes[3], 5)], 31)
    assert (m.key, m.distance, m.variant) == (3, 5, 1)


def test_add_remove_readd_and_compaction() -> None:
    rng = np.random.default_rng(2)
    n = 80_000
    hashes = _random(rng, n)
    index = PackedPDQIndex()
    index.add_many(list(range(n)), hashes)
    assert index.remove(7) and not index.remove(7)
    assert index.query(hashes[7], 10) == []
    index.add(7, hashes[7])
    assert [m.key for m in index.query(hashes[7], 0)] == [7]
    for k in range(0, 30_000):  # more than a quarter dead: compaction
        index.remove(k)
    assert len(index) == n - 30_000
    assert index.query(hashes[100], 20) == []
    assert [m.key for m in index.query(hashes[50_000], 0)] == [50_000]
    for k in range(100, 5_000):  # tail past the rebuild threshold
        index.add(k, hashes[k])
    assert [m.key for m in index.query(hashes[4_999], 31)] == [4_999]


def test_rejects_bad_hashes() -> None:
    index = PackedPDQIndex()
    with pytest.raises(ValueError, match="32 bytes"):
        index.add(1, b"short")
    with pytest.raises(ValueError, match="at least one"):
        index.query([], 10)


def test_popcount_fallback_agrees() -> None:
    x = np.random.default_rng(3).integers(0, 2**63, size=1000, dtype=np.uint64)
    table = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
    slow = table[x.view(np.uint8).reshape(-1, 8)].sum(axis=1)
    assert (popcount64(x) == slow).all()


@pytest.mark.parametrize("cls", [PackedPDQIndex, BruteForceIndex])
def test_query_then_add_race_has_one_winner(cls: type) -> None:
    index = cls()
    h = bytes(range(32))
    barrier = threading.Barrier(8)
    results: list[list[Match]] = []
    lock = threading.Lock()

    def upload(key: int) -> None:
        barrier.wait()
        found = index.query_then_add(key, [h], 31)
        with lock:
            results.append(found)

    threads = [threading.Thread(target=upload, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(r) for r in results) == list(range(8))  # exactly one saw nothing
    assert len(index) == 8


def test_service_index_after_mark_matches_the_full_query() -> None:
    """``DuplicateIndex.same_photo(after=)`` (the check inside the write lock) finds
    exactly the full query's hits above the mark, with the tables built and a tail."""
    from photocheck.store.dupindex import DupEntry, DuplicateIndex

    rng = np.random.default_rng(10)
    base = _random(rng, 70_000)
    target = base[123]
    hashes = base + [_flip(rng, target, b) for b in (3, 9, 20, 40)]  # 70,000..70,003

    def entry(i: int, h: bytes) -> DupEntry:
        return DupEntry(i + 1, i + 1, 1, None, h, None, None, None, "", None)

    index = DuplicateIndex()
    index.build(entry(i, h) for i, h in enumerate(hashes[:70_001]))
    index.add_many([entry(i, h) for i, h in enumerate(hashes) if i > 70_000])
    full = index.same_photo(pdq_variants=[target], max_distance=31)
    assert {h.photo_id for h in full} == {124, 70_001, 70_002, 70_003}
    for mark in (0, 124, 70_000, 70_001, 70_004):
        tail = index.same_photo(pdq_variants=[target], max_distance=31, after=mark)
        assert tail == [h for h in full if h.photo_id > mark], mark
