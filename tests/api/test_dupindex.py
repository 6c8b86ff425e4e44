"""DuplicateIndex: exact PDQ search against a brute-force oracle (scan and multi-index
paths), scene candidates by county/household, reduced embeddings, file-backed columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from photocheck.store.dupindex import DupEntry, DuplicateIndex, reduce_embeddings


def _flip(h: bytes, bits: list[int]) -> bytes:
    b = bytearray(h)
    for bit in bits:
        b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


def _brute(hashes: list[bytes], queries: list[bytes], r: int) -> dict[int, int]:
    out: dict[int, int] = {}
    for i, h in enumerate(hashes):
        d = min((int.from_bytes(h, "big") ^ int.from_bytes(q, "big")).bit_count() for q in queries)
        if d <= r:
            out[i] = d
    return out


@pytest.mark.parametrize("n", [500, 70_000])  # full scan; multi-index + tail scan
def test_same_photo_equals_brute_force(n: int) -> None:
    rng = np.random.default_rng(n)
    hashes = [rng.bytes(32) for _ in range(n)]
    base = hashes[n // 3]
    query = _flip(base, [3, 200])
    planted = {7: 31, 11: 32, 13: 16, n - 1: 1}  # row -> bits flipped from ``base``
    for row, flips in planted.items():
        hashes[row] = _flip(query, rng.choice(256, size=flips, replace=False).tolist())
    index = DuplicateIndex()
    entries = [
        DupEntry(i + 1, i, 1, None, h, None, None, None, "", None) for i, h in enumerate(hashes)
    ]
    index.build(entries[:-100])
    for e in entries[-100:]:  # the tail after the tables were built
        index.add(e)
    queries = [query, rng.bytes(32)]
    hits = index.same_photo(pdq_variants=queries, max_distance=31)
    expected = _brute(hashes, queries, 31)
    assert {h.photo_id - 1: h.distance for h in hits} == expected
    assert 11 not in expected and {n // 3, 7, 13, n - 1} <= set(expected)
    assert [h.distance for h in hits] == sorted(h.distance for h in hits)


def test_scene_candidates_county_household_and_gps(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    emb = rng.random((6, 1280)).astype(np.float32)
    emb[1] = emb[0] + 0.05 * rng.random(1280)  # nearly the same content as 0
    emb[2] = emb[0]  # same content, but the uploading household's own photo
    emb[3] = emb[0]  # same content, another county
    rows = [
        DupEntry(1, 10, 1, None, None, emb[0], None, None, "", None),
        DupEntry(2, 11, 1, None, None, emb[1], None, None, "", None),
        DupEntry(3, 99, 1, None, None, emb[2], None, None, "", None),
        DupEntry(4, 12, 2, None, None, emb[3], None, None, "", None),
        DupEntry(5, 13, 1, None, None, None, 33.70001, 110.30001, "", None),  # 1.4 m away
        DupEntry(6, 14, 1, None, None, emb[5], 34.0, 111.0, "", None),  # far, unrelated
    ]
    index = DuplicateIndex(spill_dir=tmp_path)  # GPS and embeddings in a file map
    index.build(rows)
    found = index.scene_candidates(
        county_id=1,
        exclude_household=99,
        embedding=emb[0],
        lat=33.7,
        lon=110.3,
        min_similarity=0.98,
        max_metres=30.0,
        limit=10,
    )
    assert [c.photo_id for c in found] == [1, 2, 5]
    assert found[0].similarity == pytest.approx(1.0, abs=0.01)
    assert found[2].similarity is None and found[2].metres == pytest.approx(1.4, abs=0.5)
    assert index.memory()["file_backed"] > 0


def test_reduced_embeddings_keep_cosine() -> None:
    rng = np.random.default_rng(5)
    a = np.abs(rng.standard_normal((200, 1280))).astype(np.float32)  # ReLU-like features
    b = a + rng.standard_normal(a.shape).astype(np.float32) * rng.random((200, 1))
    full = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    ra, rb = reduce_embeddings(a).astype(np.float32), reduce_embeddings(b).astype(np.float32)
    reduced = (ra * rb).sum(1) / np.linalg.norm(ra, axis=1) / np.linalg.norm(rb, axis=1)
    err = np.abs(full - reduced)  # random projection: ~(1 - cos^2) / sqrt(128) spread
    assert err.mean() < 0.03 and err.max() < 0.12
    assert np.corrcoef(full, reduced)[0, 1] > 0.97


def test_add_is_idempotent_and_build_replaces() -> None:
    index = DuplicateIndex()
    e = DupEntry(5, 1, 1, None, bytes(32), None, None, None, "", None)
    index.add(e)
    index.add(e)
    assert len(index) == 1 and 5 in index and 6 not in index
    index.build([])
    assert len(index) == 0 and 5 not in index
