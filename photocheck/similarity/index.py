"""Hamming-distance indexes over 256-bit PDQ hashes (ThreatExchange-style).

``HashIndex`` is the contract; ``BruteForceIndex`` is the plain-Python oracle the tests
compare against; ``PackedPDQIndex`` is the fast one the service uses.

PackedPDQIndex is a multi-index (Norouzi et al., "Fast search in Hamming space with
multi-index hashing"): the 256 bits are cut into 16 chunks of 16 bits. If two hashes
are within ``r`` bits, by pigeonhole at least one chunk differs in at most ``r // 16``
bits, so probing each chunk's table with its value and every variant within
``r // 16`` flips finds every candidate; candidates are then checked exactly. For
``r <= 31`` that is 17 probes per chunk and ~4,000 candidates per query hash in 1M
random hashes. For ``r >= 48`` (3+ flips per chunk) a vectorised full scan is cheaper.
Rows added after the last table build sit in a small tail that is scanned in full;
the tables are rebuilt once the tail grows past a few percent of the index.
Removals are tombstones; the arrays are compacted when a quarter of rows are dead.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Protocol

import numpy as np

__all__ = [
    "PDQ_BYTES",
    "BruteForceIndex",
    "HashIndex",
    "Match",
    "PackedPDQIndex",
    "pack_hashes",
    "popcount64",
]

PDQ_BYTES = 32
_WORDS = 4  # uint64 per hash
_CHUNKS = 16  # 16-bit chunks for the multi-index
_MAX_PROBE_FLIPS = 2  # beyond this (r >= 48) a full scan beats probing
_MIN_TABLE_ROWS = 65536  # below this a full scan is about as fast as probing


@dataclass(frozen=True, order=True)
class Match:
    """One indexed key within the query radius; ``variant`` is the query hash that hit."""

    distance: int
    key: Hashable
    variant: int = 0


class HashIndex(Protocol):
    def add(self, key: Hashable, hash_: bytes) -> None: ...

    def remove(self, key: Hashable) -> bool: ...

    def query(self, hashes: bytes | Sequence[bytes], max_distance: int) -> list[Match]: ...

    def __len__(self) -> int: ...


def _as_variants(hashes: bytes | Sequence[bytes]) -> list[bytes]:
    variants = [hashes] if isinstance(hashes, bytes | bytearray) else list(hashes)
    if not variants:
        msg = "query needs at least one hash"
        raise ValueError(msg)
    for h in variants:
        if len(h) != PDQ_BYTES:
            msg = f"a PDQ hash is {PDQ_BYTES} bytes, got {len(h)}"
            raise ValueError(msg)
    return [bytes(h) for h in variants]


def _best_per_key(found: Iterable[Match]) -> list[Match]:
    """Keep the smallest distance per key; sort by distance, then key text."""
    best: dict[Hashable, Match] = {}
    for m in found:
        old = best.get(m.key)
        if old is None or (m.distance, m.variant) < (old.distance, old.variant):
            best[m.key] = m
    return sorted(best.values(), key=lambda m: (m.distance, str(m.key)))


class BruteForceIndex:
    """Every key compared with Python ints: slow, obviously right, the test oracle."""

    def __init__(self) -> None:
        self._hashes: dict[Hashable, list[int]] = {}
        self._lock = threading.Lock()

    def add(self, key: Hashable, hash_: bytes) -> None:
        (h,) = _as_variants(hash_)
        with self._lock:
            self._hashes.setdefault(key, []).append(int.from_bytes(h, "big"))

    def remove(self, key: Hashable) -> bool:
        with self._lock:
            return self._hashes.pop(key, None) is not None

    def query(self, hashes: bytes | Sequence[bytes], max_distance: int) -> list[Match]:
        qs = [int.from_bytes(h, "big") for h in _as_variants(hashes)]
        with self._lock:
            items = [(k, h) for k, hs in self._hashes.items() for h in hs]
        found = []
        for key, h in items:
            dists = [(q ^ h).bit_count() for q in qs]
            d = min(dists)
            if d <= max_distance:
                found.append(Match(d, key, dists.index(d)))
        return _best_per_key(found)

    def query_then_add(
        self, key: Hashable, hashes: bytes | Sequence[bytes], max_distance: int
    ) -> list[Match]:
        variants = _as_variants(hashes)
        with self._lock:
            items = [(k, h) for k, hs in self._hashes.items() for h in hs]
            self._hashes.setdefault(key, []).append(int.from_bytes(variants[0], "big"))
        qs = [int.from_bytes(h, "big") for h in variants]
        found = []
        for k, h in items:
            dists = [(q ^ h).bit_count() for q in qs]
            if min(dists) <= max_distance:
                found.append(Match(min(dists), k, dists.index(min(dists))))
        return _best_per_key(found)

    def __len__(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._hashes.values())


# --- popcount ---------------------------------------------------------------------

_BYTE_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def popcount64(x: np.ndarray) -> np.ndarray:
    """Set bits per uint64 element (np.bitwise_count on numpy >= 2, else a byte table)."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    as_bytes = np.ascontiguousarray(x).view(np.uint8).reshape(*x.shape, 8)
    return _BYTE_POPCOUNT[as_bytes].sum(axis=-1, dtype=np.uint8)


def _row_distances(rows: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Hamming distances of ``rows`` (n,4) to one packed hash ``q`` (4,).

    Four column adds: much faster than ``.sum(axis=1)`` over a 4-wide axis.
    """
    pc = popcount64(rows ^ q)
    return pc[:, 0].astype(np.int32) + pc[:, 1] + pc[:, 2] + pc[:, 3]


def _flip_masks(max_flips: int) -> np.ndarray:
    """Every 16-bit XOR mask with at most ``max_flips`` bits set."""
    masks = [0]
    for f in range(1, max_flips + 1):
        masks += [sum(1 << b for b in bits) for bits in combinations(range(16), f)]
    return np.array(masks, dtype=np.uint16)


_MASKS = [_flip_masks(f) for f in range(_MAX_PROBE_FLIPS + 1)]


def pack_hashes(hashes: Sequence[bytes]) -> np.ndarray:
    """32-byte hashes -> (n, 4) uint64 rows (what ``add_packed`` / ``query_rows`` take)."""
    return _pack(_as_variants(list(hashes)))


def _pack(hashes: Sequence[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(hashes), dtype=np.uint64).reshape(-1, _WORDS).copy()


def _chunks(packed: np.ndarray) -> np.ndarray:
    """(n,4) uint64 -> (n,16) 16-bit chunk values (as int64 for index arithmetic)."""
    return packed.view(np.uint16).reshape(-1, _CHUNKS).astype(np.int64)


class PackedPDQIndex:
    """Fast exact PDQ index: packed uint64 rows, 16-bit multi-index, tombstones, a lock.

    Keys are ints (photo ids). A key may be added more than once (a photo with
    several hashes); ``remove`` drops them all and a query reports each key once, at
    its best distance. Every public method takes the lock, and ``query_then_add`` is
    atomic, so two identical photos uploaded at the same moment cannot both see an
    empty index.

    ``keyed=False`` is the service's form (``store.dupindex``): a row's key is its row
    number, so no key array is kept (8 B less per hash), and rows are never removed.
    The tombstone array is made on the first removal only.
    """

    def __init__(self, capacity: int = 1024, *, keyed: bool = True) -> None:
        self._lock = threading.RLock()
        self._rows = np.zeros((max(capacity, 16), _WORDS), dtype=np.uint64)
        self._keys: np.ndarray | None = np.zeros(len(self._rows), dtype=np.int64) if keyed else None
        self._live: np.ndarray | None = None  # None: every row is live
        self._n = 0  # rows used (live or dead)
        self._dead = 0
        # Multi-index over rows [0, _built): per chunk, row ids grouped by chunk value.
        self._built = 0
        self._starts = np.zeros((_CHUNKS, 65537), dtype=np.int32)
        self._table = np.zeros(0, dtype=np.uint8)  # row ids, 3 (or 4) bytes little-endian
        self._id_bytes = 3

    # -- sizes ---------------------------------------------------------------------

    def __len__(self) -> int:
        with self._lock:
            return self._n - self._dead

    @property
    def nbytes(self) -> int:
        """Bytes held by the index's arrays (hashes, keys, tombstones, multi-index)."""
        with self._lock:
            arrays = (self._rows, self._keys, self._live, self._starts, self._table)
            return sum(a.nbytes for a in arrays if a is not None)

    # -- writes --------------------------------------------------------------------

    def add(self, key: int, hash_: bytes) -> None:
        self.add_many([key], [hash_])

    def add_many(self, keys: Sequence[int], hashes: Sequence[bytes], *, build: bool = True) -> None:
        """Add many rows at once (one copy, one table rebuild at most). ``build=False``
        (a bulk load) leaves the new rows in the scanned tail until ``build()``."""
        if len(keys) != len(hashes):
            msg = "keys and hashes differ in length"
            raise ValueError(msg)
        if not keys:
            return
        self.add_packed(np.asarray(keys, dtype=np.int64), _pack(_as_variants(hashes)), build=build)

    def add_packed(self, keys: np.ndarray, packed: np.ndarray, *, build: bool = True) -> None:
        """``add_many`` for hashes already packed as (n, 4) uint64; without keys the
        rows must be appended at their row numbers (``keyed=False``)."""
        with self._lock:
            if self._keys is None and not np.array_equal(
                keys, np.arange(self._n, self._n + len(keys))
            ):
                msg = "an unkeyed index takes rows in order: key = row number"
                raise ValueError(msg)
            self._append(keys, packed, build=build)

    def remove(self, key: int) -> bool:
        """Tombstone every row of ``key``; True if there was one."""
        with self._lock:
            if self._keys is None:
                msg = "an unkeyed index never removes rows"
                raise TypeError(msg)
            if self._live is None:
                self._live = np.ones(len(self._rows), dtype=bool)
            rows = np.flatnonzero((self._keys[: self._n] == key) & self._live[: self._n])
            if len(rows) == 0:
                return False
            self._live[rows] = False
            self._dead += len(rows)
            if self._dead > 1024 and self._dead * 4 > self._n:
                self._compact()
            return True

    def query_then_add(
        self, key: int, hashes: bytes | Sequence[bytes], max_distance: int
    ) -> list[Match]:
        """Atomically: the matches already indexed, then add ``key`` with ``hashes[0]``."""
        variants = _as_variants(hashes)
        with self._lock:
            found = self.query(variants, max_distance)
            self._append(np.array([key], dtype=np.int64), _pack(variants[:1]))
        return found

    def _append(self, keys: np.ndarray, packed: np.ndarray, *, build: bool = True) -> None:
        need = self._n + len(keys)
        if need > len(self._rows):
            self._grow(max(need, len(self._rows) * 3 // 2))
        self._rows[self._n : need] = packed
        if self._keys is not None:
            self._keys[self._n : need] = keys
        if self._live is not None:
            self._live[self._n : need] = True
        self._n = need
        if (
            build
            and self._n >= _MIN_TABLE_ROWS
            and self._n - self._built > 4096 + self._built // 32
        ):
            self._build()

    def _grow(self, capacity: int) -> None:
        for name in ("_rows", "_keys", "_live"):
            old = getattr(self, name)
            if old is None:
                continue
            new = np.zeros((capacity, *old.shape[1:]), dtype=old.dtype)
            new[: self._n] = old[: self._n]
            setattr(self, name, new)

    def reserve(self, capacity: int) -> None:
        """Room for ``capacity`` rows in one allocation (a bulk load of known size)."""
        with self._lock:
            if capacity > len(self._rows):
                self._grow(capacity)

    def state(self) -> dict[str, np.ndarray]:
        """The unkeyed index as arrays (views; rows are append-only): what
        ``restore`` takes back without rebuilding the chunk tables."""
        with self._lock:
            if self._keys is not None or self._live is not None:
                msg = "only an unkeyed index without removals is saved"
                raise TypeError(msg)
            meta = np.array([self._n, self._built, self._id_bytes], dtype=np.int64)
            return {
                "rows": self._rows[: self._n],
                "starts": self._starts,
                "table": self._table,
                "meta": meta,
            }

    def restore(self, state: dict[str, np.ndarray]) -> None:
        """Take back a ``state()`` (copied into RAM)."""
        n, built, id_bytes = (int(x) for x in state["meta"])
        with self._lock:
            if self._keys is not None:
                msg = "only an unkeyed index is restored"
                raise TypeError(msg)
            rows = np.array(state["rows"], dtype=np.uint64).reshape(-1, _WORDS)
            if len(rows) != n:
                msg = f"snapshot holds {len(rows)} rows, says {n}"
                raise ValueError(msg)
            self._rows = (
                rows if n >= 16 else np.concatenate((rows, np.zeros((16 - n, _WORDS), np.uint64)))
            )
            self._n, self._dead, self._live = n, 0, None
            self._built, self._id_bytes = built, id_bytes
            self._starts = np.array(state["starts"])
            self._table = np.array(state["table"], dtype=np.uint8)

    def trim(self) -> None:
        """Drop spare capacity (after a bulk load)."""
        with self._lock:
            for name in ("_rows", "_keys", "_live"):
                old = getattr(self, name)
                if old is not None:
                    setattr(self, name, old[: max(self._n, 16)].copy())

    def build(self) -> None:
        """Build the chunk tables over every row now (after ``add_many(build=False)``)."""
        with self._lock:
            if self._n >= _MIN_TABLE_ROWS:
                self._build()

    def _compact(self) -> None:
        assert self._keys is not None and self._live is not None
        live = np.flatnonzero(self._live[: self._n])
        n = len(live)
        self._rows[:n] = self._rows[live]
        self._keys[:n] = self._keys[live]
        self._live[:n] = True
        self._live[n : self._n] = False
        self._n, self._dead = n, 0
        self._build()

    def _build(self) -> None:
        """(Re)build the 16 chunk tables over every row (dead rows filtered at query)."""
        n = self._n
        self._id_bytes = 3 if n < 1 << 24 else 4
        chunks = self._rows[:n].view(np.uint16).reshape(n, _CHUNKS)
        starts = np.zeros((_CHUNKS, 65537), dtype=np.int64)
        table = np.empty((_CHUNKS * n, self._id_bytes), dtype=np.uint8)  # flattened below
        for c in range(_CHUNKS):
            col = chunks[:, c]
            order = np.argsort(col, kind="stable").astype(np.uint32)
            counts = np.bincount(col, minlength=65536)
            starts[c, 0] = c * n
            np.cumsum(counts, out=starts[c, 1:])
            starts[c, 1:] += c * n
            table[c * n : (c + 1) * n] = order.view(np.uint8).reshape(n, 4)[:, : self._id_bytes]
        self._starts = starts.astype(np.int32 if _CHUNKS * n < 2**31 else np.int64)
        self._table = table.reshape(-1)
        self._built = n

    # -- queries -------------------------------------------------------------------

    def query(self, hashes: bytes | Sequence[bytes], max_distance: int) -> list[Match]:
        """Keys within ``max_distance`` bits of any of the query hashes (up to 8)."""
        rows, variants, dists = self.query_rows(_pack(_as_variants(hashes)), max_distance)
        with self._lock:
            keys = rows if self._keys is None else self._keys[rows]
        return _best_per_key(
            Match(int(d), int(k), int(v)) for k, v, d in zip(keys, variants, dists, strict=True)
        )

    def query_rows(
        self, qs: np.ndarray, max_distance: int, *, from_row: int = 0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, variant, distance) of live rows within ``max_distance`` of any packed
        query hash of ``qs`` (k, 4); a row may repeat (several variants hit it).
        ``from_row``: only rows from there on, scanned in full (the few rows appended
        since an earlier query: ``DuplicateIndex.same_photo(after=)``)."""
        with self._lock:
            flips = max_distance // _CHUNKS
            if from_row > 0:
                rows, variants, dists = self._scan(qs, from_row, self._n, max_distance)
            elif flips > _MAX_PROBE_FLIPS or self._built < _MIN_TABLE_ROWS:
                rows, variants, dists = self._scan(qs, 0, self._n, max_distance)
            else:
                rows, variants, dists = self._probe(qs, max_distance, flips)
                if self._n > self._built:
                    tail = self._scan(qs, self._built, self._n, max_distance)
                    rows, variants, dists = (
                        np.concatenate(p) for p in zip((rows, variants, dists), tail, strict=True)
                    )
            if self._live is not None:
                keep = self._live[rows]
                rows, variants, dists = rows[keep], variants[keep], dists[keep]
        return rows, variants, dists

    def _row_ids(self, positions: np.ndarray) -> np.ndarray:
        """Unpack little-endian 3- or 4-byte row ids at ``positions`` of the table."""
        b = self._id_bytes
        flat = self._table
        rows = np.take(flat, positions * b).astype(np.int64)
        for i in range(1, b):
            rows |= np.take(flat, positions * b + i).astype(np.int64) << (8 * i)
        return rows

    def _scan(
        self, qs: np.ndarray, lo: int, hi: int, r: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Full vectorised scan of rows [lo, hi) against every query variant."""
        out_rows, out_vars, out_d = [], [], []
        block = 1 << 16
        for start in range(lo, hi, block):
            part = self._rows[start : min(hi, start + block)]
            for v, q in enumerate(qs):
                d = _row_distances(part, q)
                hit = np.flatnonzero(d <= r)
                if len(hit):
                    out_rows.append(hit + start)
                    out_vars.append(np.full(len(hit), v))
                    out_d.append(d[hit])
        if not out_rows:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty.astype(np.int32)
        return np.concatenate(out_rows), np.concatenate(out_vars), np.concatenate(out_d)

    def _probe(
        self, qs: np.ndarray, r: int, flips: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Multi-index probe: candidate rows from the chunk tables, checked exactly."""
        masks = _MASKS[flips].astype(np.int64)
        values = _chunks(qs)[:, :, None] ^ masks[None, None, :]  # (k, 16, P)
        chunk_ix = np.arange(_CHUNKS)[None, :, None]
        lo = self._starts[chunk_ix, values].ravel().astype(np.int64)
        hi = self._starts[chunk_ix, values + 1].ravel().astype(np.int64)
        lengths = hi - lo
        total = int(lengths.sum())
        if total == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty.astype(np.int32)
        # Concatenate ranges [lo, hi) without a Python loop.
        offsets = np.repeat(lo - np.cumsum(lengths) + lengths, lengths)
        positions = offsets + np.arange(total)
        rows = self._row_ids(positions)
        cand = np.take(self._rows, rows, axis=0)
        # Candidates come grouped by query variant: XOR each group with its own hash.
        per_variant = lengths.reshape(len(qs), -1).sum(axis=1)
        bounds = np.concatenate(([0], np.cumsum(per_variant)))
        dists = np.empty(total, dtype=np.int32)
        for v, q in enumerate(qs):
            a, b = bounds[v], bounds[v + 1]
            dists[a:b] = _row_distances(cand[a:b], q)
        variants = np.repeat(np.arange(len(qs)), per_variant)
        hit = dists <= r
        return rows[hit], variants[hit], dists[hit]
