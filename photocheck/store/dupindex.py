"""The in-memory duplicate index over the stored photos, kept in step with the database.

It holds, for every stored photo (a rejected one too: a photo reused for another
household is reuse whatever its quality) except copies already found to be another
household's photo, the PDQ hash, the content embedding, the GPS point and who owns it.
It is built from the database at start and extended only after the photo's row is
committed. It is not thread-safe on its own: callers query and extend it inside
``Database.write()``, which makes "query, decide, insert, add" one atomic step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..similarity.index import PackedPDQIndex

__all__ = ["DupEntry", "DuplicateIndex", "HashHit", "embedding_from_bytes", "embedding_to_bytes"]

_CHUNK = 8192


@dataclass(frozen=True)
class DupEntry:
    photo_id: int
    household_id: int
    county_id: int
    site_code: str | None
    pdq: bytes | None
    embedding: np.ndarray | None  # float32, unit length
    lat: float | None
    lon: float | None
    sha256: str
    pixel_sha256: str | None


@dataclass(frozen=True)
class HashHit:
    entry: DupEntry
    distance: int  # PDQ bits (0 for an exact byte or pixel match)
    via: str  # "sha256" | "pixel_sha256" | "pdq"


def embedding_to_bytes(embedding: Sequence[float] | np.ndarray) -> bytes:
    """Unit-normalised float16 (1280-d -> 2.5 kB per photo)."""
    vec = np.asarray(embedding, dtype=np.float32)
    norm = float(np.linalg.norm(vec))
    if norm > 0:
        vec = vec / norm
    return vec.astype(np.float16).tobytes()


def embedding_from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.float16).astype(np.float32)


class DuplicateIndex:
    """PDQ hashes in a ``PackedPDQIndex`` (keyed by photo id), exact digests, embeddings
    and GPS points in row-aligned arrays."""

    def __init__(self) -> None:
        self._entries: list[DupEntry] = []
        self._by_photo: dict[int, int] = {}
        self._pdq = PackedPDQIndex()
        self._exact: dict[str, list[int]] = {}
        self._emb: np.ndarray | None = None
        self._has_emb = np.zeros(0, dtype=bool)
        self._county = np.zeros(0, dtype=np.int64)
        self._latlon = np.zeros((0, 2), dtype=np.float64)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, photo_id: int) -> bool:
        return photo_id in self._by_photo

    def build(self, entries: Iterable[DupEntry]) -> None:
        """Replace the contents (start-up rebuild from the database)."""
        self.__init__()  # type: ignore[misc]
        keys: list[int] = []
        hashes: list[bytes] = []
        for entry in entries:
            if self._add_rows(entry) and entry.pdq is not None:
                keys.append(entry.photo_id)
                hashes.append(entry.pdq)
        self._pdq.add_many(keys, hashes)

    def add(self, entry: DupEntry) -> None:
        if self._add_rows(entry) and entry.pdq is not None:
            self._pdq.add(entry.photo_id, entry.pdq)

    def _add_rows(self, entry: DupEntry) -> bool:
        if entry.photo_id in self._by_photo:
            return False
        row = len(self._entries)
        self._entries.append(entry)
        self._by_photo[entry.photo_id] = row
        for key in (entry.sha256, entry.pixel_sha256):
            if key:
                self._exact.setdefault(key, []).append(row)
        self._county = _append(self._county, np.asarray(entry.county_id, dtype=np.int64))
        lat = entry.lat if entry.lat is not None else math.nan
        lon = entry.lon if entry.lon is not None else math.nan
        self._latlon = _append(self._latlon, np.array([lat, lon]))
        if entry.embedding is not None:
            if self._emb is None:
                self._emb = np.zeros((row, entry.embedding.shape[0]), dtype=np.float16)
            self._emb = _append(self._emb, entry.embedding.astype(np.float16))
        elif self._emb is not None:
            self._emb = _append(self._emb, np.zeros(self._emb.shape[1], dtype=np.float16))
        self._has_emb = _append(self._has_emb, np.asarray(entry.embedding is not None))
        return True

    def same_photo(
        self,
        *,
        sha256: str,
        pixel_sha256: str | None,
        pdq_variants: Sequence[bytes],
        max_distance: int,
    ) -> list[HashHit]:
        """Stored photos that are this photo: same bytes, same pixels, or PDQ within reach.

        ``pdq_variants`` are the query's dihedral hashes, so flips and rotations match.
        Sorted by distance; one hit per stored photo.
        """
        hits: dict[int, HashHit] = {}
        for key, via in ((sha256, "sha256"), (pixel_sha256, "pixel_sha256")):
            for row in self._exact.get(key or "", []):
                hits.setdefault(row, HashHit(self._entries[row], 0, via))
        if pdq_variants and len(self._pdq):
            for match in self._pdq.query(list(pdq_variants), max_distance):
                row = self._by_photo[int(match.key)]  # type: ignore[call-overload]
                hits.setdefault(row, HashHit(self._entries[row], match.distance, "pdq"))
        return sorted(hits.values(), key=lambda h: (h.distance, h.entry.photo_id))

    def scene_candidates(
        self,
        *,
        county_id: int,
        embedding: np.ndarray | None,
        lat: float | None,
        lon: float | None,
        min_similarity: float,
        max_metres: float,
        limit: int,
        since: int = 0,
    ) -> list[tuple[DupEntry, float | None, float | None]]:
        """Photos of the same county that may show the same scene: (entry, cosine, metres).

        A candidate is similar in content (cosine of unit embeddings) or taken nearby;
        the most similar come first. Only a geometric check can confirm one. ``since``
        skips the first rows (those already examined in an earlier snapshot).
        """
        n = len(self._entries)
        if n <= since:
            return []
        mask = self._county[:n] == county_id
        mask[:since] = False
        sims = np.full(n, np.nan, dtype=np.float32)
        if embedding is not None and self._emb is not None:
            query = embedding.astype(np.float32)
            query = query / max(float(np.linalg.norm(query)), 1e-12)
            rows = np.flatnonzero(mask & self._has_emb[:n])
            for start in range(0, len(rows), _CHUNK):  # float16 -> float32 a chunk at a time
                part = rows[start : start + _CHUNK]
                sims[part] = self._emb[part].astype(np.float32) @ query
        metres = np.full(n, np.nan)
        if lat is not None and lon is not None:
            metres = _haversine_m(lat, lon, self._latlon[:n, 0], self._latlon[:n, 1])
        with np.errstate(invalid="ignore"):
            near = (sims >= min_similarity) | (metres <= max_metres)
        rows = np.flatnonzero(mask & near)
        order = sorted(rows, key=lambda r: -(0.0 if np.isnan(sims[r]) else float(sims[r])))
        return [
            (
                self._entries[r],
                None if np.isnan(sims[r]) else float(sims[r]),
                None if np.isnan(metres[r]) else float(metres[r]),
            )
            for r in order[:limit]
        ]

    def memory_bytes(self) -> int:
        arrays = [self._county, self._latlon, self._has_emb]
        if self._emb is not None:
            arrays.append(self._emb)
        return self._pdq.nbytes + sum(a.nbytes for a in arrays)


def _append(matrix: np.ndarray, row: np.ndarray) -> np.ndarray:
    """Amortised O(1) append: grows a hidden capacity, returns a view of the used rows."""
    base = matrix.base if matrix.base is not None else matrix
    n = matrix.shape[0]
    if base.shape[0] <= n or base.shape[1:] != row.shape:
        capacity = max(16, 2 * n)
        grown = np.zeros((capacity, *row.shape), dtype=matrix.dtype)
        grown[:n] = matrix
        base = grown
    base[n] = row
    return base[: n + 1]


def _haversine_m(lat: float, lon: float, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    r = 6_371_000.0
    p1, p2 = math.radians(lat), np.radians(lats)
    dphi = p2 - p1
    dlmb = np.radians(lons) - math.radians(lon)
    a = np.sin(dphi / 2) ** 2 + math.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return 2 * r * np.arcsin(np.sqrt(np.clip(a, 0, 1)))
