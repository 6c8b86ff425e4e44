"""The in-memory duplicate index over the stored photos, kept in step with the database.

It holds, for every stored photo (a rejected one too: a photo reused for another
household is reuse whatever its quality) except copies already found to be another
household's photo, what the two duplicate questions need, as row-aligned arrays:

* same photo (all counties): the 256-bit PDQ hash in the one PDQ index of the project
  (``similarity.index.PackedPDQIndex``, unkeyed: row = index row; 32 B hash + 16 x 3 B
  row ids per photo), and the photo id;
* same scene (one county): county and household ids in memory; the GPS point and a
  reduced content embedding (the 1280-d pooled features through a fixed, seeded random
  orthogonal projection to 128-d, int8) in a file-backed map when a directory is
  given, so a million photos cost ~91 B of RAM each (``bench_service_index.py``).

Exact byte and pixel digests are not here: the database answers them through its
indexed ``sha256`` / ``pixel_sha256`` columns (``Intake`` asks).

Writes and same-photo queries happen inside ``Database.write()`` (the caller's lock
makes "query, decide, insert, add" atomic); the index also has its own lock, and rows
are only ever appended, so ``scene_candidates`` reads a snapshot of the first n rows
without blocking writers for the whole scan.
"""

from __future__ import annotations

import math
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from threadpoolctl import threadpool_limits

from ..similarity.index import PackedPDQIndex, pack_hashes

__all__ = [
    "EMBEDDING_DIMS",
    "DupEntry",
    "DuplicateIndex",
    "HashHit",
    "IndexColumns",
    "SceneCandidate",
    "embedding_from_bytes",
    "embedding_to_bytes",
    "prepare_projection",
    "reduce_embeddings",
]

EMBEDDING_DIMS = 128  # projected dimensions (bench_service_index.py --separation)
_PROJECTION_SEED = 20240611  # fixed: stored vectors and queries must share the basis
_HAS_PDQ, _HAS_EMB, _HAS_GPS = 1, 2, 4


@dataclass(frozen=True)
class DupEntry:
    """One stored photo as the database gives it (``repo.dup_entries``)."""

    photo_id: int
    household_id: int
    county_id: int
    site_code: str | None  # not indexed: links change, the database is asked instead
    pdq: bytes | None
    embedding: np.ndarray | None  # float32 content features (any length the model gives)
    lat: float | None
    lon: float | None
    sha256: str  # not indexed: the database's indexed column answers exact copies
    pixel_sha256: str | None


@dataclass(frozen=True)
class IndexColumns:
    """A batch of index rows as arrays (the bulk load's form of many ``DupEntry``)."""

    photo_id: np.ndarray  # (n,) int64, increasing
    household_id: np.ndarray  # (n,) int32
    county_id: np.ndarray  # (n,) int32
    pdq: np.ndarray  # (n, 4) uint64 packed hashes, zeros where has_pdq is false
    has_pdq: np.ndarray  # (n,) bool
    latlon: np.ndarray  # (n, 2) float32, NaN where there is no GPS point
    embedding: np.ndarray  # (n, EMBEDDING_DIMS) int8 reduced, zeros where there is none
    has_embedding: np.ndarray  # (n,) bool

    @classmethod
    def of(cls, entries: Sequence[DupEntry]) -> IndexColumns:
        k = len(entries)
        packed = np.zeros((k, 4), dtype=np.uint64)
        has_pdq = np.array([e.pdq is not None for e in entries], dtype=bool)
        if has_pdq.any():
            packed[has_pdq] = pack_hashes([e.pdq for e in entries if e.pdq is not None])
        has_emb = np.array([e.embedding is not None for e in entries], dtype=bool)
        emb = np.zeros((k, EMBEDDING_DIMS), dtype=np.int8)
        if has_emb.any():
            vectors = np.stack(
                [np.asarray(e.embedding) for e in entries if e.embedding is not None]
            )
            emb[has_emb] = reduce_embeddings(vectors)
        latlon = np.array(
            [
                (e.lat, e.lon) if e.lat is not None and e.lon is not None else (np.nan, np.nan)
                for e in entries
            ],
            dtype=np.float32,
        ).reshape(k, 2)
        return cls(
            photo_id=np.array([e.photo_id for e in entries], dtype=np.int64),
            household_id=np.array([e.household_id for e in entries], dtype=np.int32),
            county_id=np.array([e.county_id for e in entries], dtype=np.int32),
            pdq=packed,
            has_pdq=has_pdq,
            latlon=latlon,
            embedding=emb,
            has_embedding=has_emb,
        )


@dataclass(frozen=True)
class HashHit:
    photo_id: int
    distance: int  # PDQ bits (0 for an exact byte or pixel match)
    via: str  # "sha256" | "pixel_sha256" | "pdq"


@dataclass(frozen=True)
class SceneCandidate:
    photo_id: int
    household_id: int
    similarity: float | None  # cosine of the reduced embeddings
    metres: float | None  # between the two photos' GPS points


def embedding_to_bytes(embedding: Sequence[float] | np.ndarray) -> bytes:
    """Unit-normalised float16 (1280-d -> 2.5 kB per photo), the database copy."""
    vec = np.asarray(embedding, dtype=np.float32)
    norm = float(np.linalg.norm(vec))
    if norm > 0:
        vec = vec / norm
    return vec.astype(np.float16).tobytes()


def embedding_from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.float16).astype(np.float32)


_projections: dict[int, np.ndarray] = {}
_projection_lock = threading.Lock()


def _projection(dims_in: int) -> np.ndarray:
    """(dims_in, EMBEDDING_DIMS) orthonormal columns, the same in every process."""
    with _projection_lock:
        if dims_in not in _projections:
            rng = np.random.default_rng(_PROJECTION_SEED + dims_in)
            gauss = rng.standard_normal((dims_in, max(EMBEDDING_DIMS, 1)))
            q, _ = np.linalg.qr(gauss)
            _projections[dims_in] = q[:, :EMBEDDING_DIMS].astype(np.float32)
        return _projections[dims_in]


def prepare_projection(dims_in: int) -> None:
    """Make the projection of ``dims_in``-d features now (a service at start), not in
    its first upload: the QR and numpy's random module cost ~30 ms once."""
    if dims_in > EMBEDDING_DIMS:
        _projection(dims_in)


def reduce_embeddings(embeddings: np.ndarray) -> np.ndarray:
    """(n, d) features -> (n, 128) int8: projected, unit length, scaled to +-127.

    Cosine is preserved up to a small error (a random projection; int8 rounding adds
    little); ``bench_service_index.py --separation`` measures it on the developer set.
    """
    x = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
    if x.shape[1] > EMBEDDING_DIMS:
        x = x @ _projection(x.shape[1])
    peak = np.abs(x).max(axis=1, keepdims=True)
    return np.round(x / np.maximum(peak, 1e-12) * 127).astype(np.int8)


def _cosines(stored: np.ndarray, query: np.ndarray) -> np.ndarray:
    s = np.asarray(stored).astype(np.float32)  # a plain array: memmap ops are slow
    q = query.astype(np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", s, s)) * max(float(np.linalg.norm(q)), 1e-12)
    return (s @ q) / np.maximum(norms, 1e-12)


class _Column:
    """An append-only array that grows geometrically, in RAM or in an unlinked file."""

    def __init__(self, dtype: np.dtype | type, width: int, directory: Path | None) -> None:
        self.dtype, self.width = np.dtype(dtype), width
        self._file: IO[bytes] | None = None
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            self._file = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 - kept open
        self.data = self._alloc(0)

    def _alloc(self, capacity: int) -> np.ndarray:
        shape = (capacity, self.width) if self.width > 1 else (capacity,)
        if self._file is None or capacity == 0:
            return np.zeros(shape, dtype=self.dtype)
        self._file.truncate(capacity * self.width * self.dtype.itemsize)
        return np.memmap(self._file, dtype=self.dtype, mode="r+", shape=shape)

    def reserve(self, n: int) -> None:
        if n <= len(self.data):
            return
        old = self.data
        self.data = self._alloc(max(n, 1024, len(old) * 3 // 2))
        if self._file is None:
            self.data[: len(old)] = old  # a file-backed column already holds its rows

    @property
    def resident_bytes(self) -> int:
        return 0 if self._file is not None else self.data.nbytes

    @property
    def nbytes(self) -> int:
        return self.data.nbytes


class DuplicateIndex:
    """Row-aligned arrays: photo, household, county ids and flags in RAM; GPS points
    and reduced embeddings in RAM, or file-backed when ``spill_dir`` is given."""

    def __init__(self, spill_dir: Path | None = None) -> None:
        # One BLAS thread per calling thread, process-wide: the service runs requests in
        # parallel, and OpenBLAS's own spinning pool competed with them (the projection's
        # QR took 3.1 s wall, 1.1 s CPU on the loaded 2-core machine; 0.07 s on one thread).
        threadpool_limits(1, user_api="blas")
        self._lock = threading.RLock()
        self._spill_dir = spill_dir
        self._reset()

    def _reset(self) -> None:
        self._n = 0
        self._row_of: dict[int, int] | None = None  # photo id -> row, made on demand
        # one PDQ row per index row (zeros where there is none: _HAS_PDQ filters them)
        self._pdq = PackedPDQIndex(keyed=False)
        self._photo = np.zeros(0, dtype=np.int32)
        self._sorted = True  # photo ids arrive in increasing order (inserts are serialised)
        self._household = np.zeros(0, dtype=np.int32)
        self._county = np.zeros(0, dtype=np.int32)
        self._flags = np.zeros(0, dtype=np.uint8)
        self._latlon = _Column(np.float32, 2, self._spill_dir)
        self._emb = _Column(np.int8, EMBEDDING_DIMS, self._spill_dir)

    def __len__(self) -> int:
        return self._n

    def __contains__(self, photo_id: int) -> bool:
        with self._lock:
            rows = self._photo[: self._n]
            if self._sorted:
                i = int(np.searchsorted(rows, photo_id))
                return i < self._n and int(rows[i]) == photo_id
            return bool((rows == photo_id).any())

    def household_of(self, photo_id: int) -> int | None:
        """The household id of an indexed photo, or None."""
        with self._lock:
            rows = self._photo[: self._n]
            if self._sorted:
                i = int(np.searchsorted(rows, photo_id))
                found = i if i < self._n and int(rows[i]) == photo_id else None
            else:
                hit = np.flatnonzero(rows == photo_id)
                found = int(hit[0]) if len(hit) else None
            return None if found is None else int(self._household[found])

    # -- writes ----------------------------------------------------------------------

    def build(self, entries: Iterable[DupEntry], batch: int = 8192) -> None:
        """Replace the contents (start-up rebuild from the database), a batch at a time."""
        with self._lock:
            self._reset()
            chunk: list[DupEntry] = []
            for entry in entries:
                chunk.append(entry)
                if len(chunk) >= batch:
                    self._append(chunk, build_tables=False)
                    chunk = []
            self._append(chunk, build_tables=False)
            self._trim()
            self._pdq.build()

    def add(self, entry: DupEntry) -> None:
        with self._lock:
            if entry.photo_id in self:
                return
            self._append([entry], build_tables=True)

    def add_many(self, entries: Sequence[DupEntry]) -> None:
        """Append a batch (ids new to the index, increasing)."""
        with self._lock:
            self._append(list(entries), build_tables=True)

    def build_columns(self, chunks: Iterable[IndexColumns], capacity: int = 0) -> None:
        """Replace the contents from column batches (the bulk start-up load:
        ``indexload.bulk_columns``), no per-photo objects; ``capacity`` reserves rows."""
        with self._lock:
            self._reset()
            self._reserve(capacity)
            self._pdq.reserve(capacity)
            for cols in chunks:
                self._append_columns(cols, build_tables=False)
            self._trim()
            self._pdq.build()

    def add_columns(self, cols: IndexColumns) -> None:
        """Append a batch of columns (ids new to the index, increasing)."""
        with self._lock:
            self._append_columns(cols, build_tables=True)

    def _append(self, entries: list[DupEntry], *, build_tables: bool) -> None:
        if entries:
            self._append_columns(IndexColumns.of(entries), build_tables=build_tables)

    def _reserve(self, need: int) -> None:
        n = self._n
        for name in ("_photo", "_household", "_county", "_flags"):
            setattr(self, name, _grown(getattr(self, name), n, need))
        self._latlon.reserve(need)
        self._emb.reserve(need)

    def _append_columns(self, cols: IndexColumns, *, build_tables: bool) -> None:
        k, n = len(cols.photo_id), self._n
        if k == 0:
            return
        need = n + k
        self._reserve(need)
        gps = ~np.isnan(cols.latlon).any(axis=1)
        flags = (
            cols.has_pdq.astype(np.uint8) * _HAS_PDQ
            | cols.has_embedding.astype(np.uint8) * _HAS_EMB
            | gps.astype(np.uint8) * _HAS_GPS
        )
        if cols.has_embedding.any():
            self._emb.data[n:need] = cols.embedding
        if gps.any():
            self._latlon.data[n:need] = np.where(gps[:, None], cols.latlon, 0)
        ids = np.asarray(cols.photo_id, dtype=np.int64)
        if ids.max() >= 2**31:
            msg = "photo ids past 2**31 need a wider id column in DuplicateIndex"
            raise OverflowError(msg)
        previous = int(self._photo[n - 1]) if n else -1
        self._sorted = self._sorted and bool(np.all(np.diff(ids) > 0)) and ids[0] > previous
        self._photo[n:need] = ids
        self._household[n:need] = cols.household_id
        self._county[n:need] = cols.county_id
        self._flags[n:need] = flags
        self._row_of = None
        self._pdq.add_packed(np.arange(n, need), cols.pdq, build=build_tables)
        self._n = need

    # -- snapshot (``indexload``: a restart reads a file, then catches up) -----------

    def snapshot(self) -> dict[str, np.ndarray]:
        """Views of the first n rows of every array (rows are never rewritten, so they
        stay valid while the index grows) and of the PDQ tables."""
        with self._lock:
            n = self._n
            out: dict[str, np.ndarray] = {
                "photo": self._photo[:n],
                "household": self._household[:n],
                "county": self._county[:n],
                "flags": self._flags[:n],
                "latlon": self._latlon.data[:n],
                "embedding": self._emb.data[:n],
            }
            out.update({f"pdq_{k}": v for k, v in self._pdq.state().items()})
            return out

    def restore(self, arrays: Mapping[str, np.ndarray], block: int = 1 << 20) -> None:
        """Replace the contents by a ``snapshot()`` (arrays may be memory-mapped files)."""
        with self._lock:
            self._reset()
            n = len(arrays["photo"])
            self._photo = np.array(arrays["photo"], dtype=np.int32)
            self._household = np.array(arrays["household"], dtype=np.int32)
            self._county = np.array(arrays["county"], dtype=np.int32)
            self._flags = np.array(arrays["flags"], dtype=np.uint8)
            self._latlon.reserve(n)
            self._emb.reserve(n)
            for lo in range(0, n, block):  # copied in blocks: no second full copy in RAM
                hi = min(n, lo + block)
                self._latlon.data[lo:hi] = arrays["latlon"][lo:hi]
                self._emb.data[lo:hi] = arrays["embedding"][lo:hi]
            ids = self._photo
            self._sorted = bool(np.all(np.diff(ids) > 0)) if n else True
            self._pdq.restore({k[4:]: v for k, v in arrays.items() if k.startswith("pdq_")})
            self._n = n

    def _trim(self) -> None:
        for name in ("_photo", "_household", "_county", "_flags"):
            setattr(self, name, getattr(self, name)[: self._n].copy())
        self._pdq.trim()

    # -- queries ---------------------------------------------------------------------

    def same_photo(
        self, *, pdq_variants: Sequence[bytes], max_distance: int, after: int = 0
    ) -> list[HashHit]:
        """Stored photos whose PDQ is within ``max_distance`` bits of any of the query's
        dihedral variants (so flips and rotations match); one hit per photo, nearest first.
        ``after``: only photos with a higher id (a scan of the rows added since a
        high-water mark: the check inside the write lock, ``Intake.submit``)."""
        if not pdq_variants:
            return []
        qs = pack_hashes(list(pdq_variants))
        with self._lock:
            start = 0
            if after > 0 and self._sorted:  # rows are in id order: the newer ones are a tail
                start = int(np.searchsorted(self._photo[: self._n], after, side="right"))
                if start >= self._n:
                    return []
            rows, _, dists = self._pdq.query_rows(qs, max_distance, from_row=start)
            if after > 0:  # unsorted ids (or every row newer): filter by id
                newer = self._photo[rows] > after
                rows, dists = rows[newer], dists[newer]
            keep = (self._flags[rows] & _HAS_PDQ) != 0
            rows, dists = rows[keep], dists[keep]
            photos = self._photo[rows]
        best: dict[int, int] = {}
        for photo, d in zip(photos.tolist(), dists.tolist(), strict=True):
            if d < best.get(photo, 257):
                best[photo] = d
        return [HashHit(p, d, "pdq") for p, d in sorted(best.items(), key=lambda x: (x[1], x[0]))]

    def scene_candidates(
        self,
        *,
        county_id: int,
        exclude_household: int,
        embedding: np.ndarray | None,
        lat: float | None,
        lon: float | None,
        min_similarity: float,
        max_metres: float,
        limit: int,
    ) -> list[SceneCandidate]:
        """Photos of the county, not of ``exclude_household``, that may show the same
        scene: similar in content or taken within ``max_metres``.

        Ranked by cosine plus a proximity bonus (up to 0.1 at 0 m, none at
        ``max_metres``), so a near photo with a middling embedding outranks a far one
        with the same embedding. Only a geometric check can confirm one.
        """
        with self._lock:  # a snapshot: rows below n are never rewritten
            n = self._n
            county, household, flags = self._county[:n], self._household[:n], self._flags[:n]
            latlon, emb = np.asarray(self._latlon.data), np.asarray(self._emb.data)
            photo = self._photo[:n]
        rows = np.flatnonzero((county == county_id) & (household != exclude_household))
        if len(rows) == 0:
            return []
        sims = np.full(len(rows), np.nan, dtype=np.float32)
        if embedding is not None:
            query = reduce_embeddings(np.asarray(embedding))[0]
            has = (flags[rows] & _HAS_EMB) != 0
            sims[has] = _cosines(emb[rows[has]], query)
        metres = np.full(len(rows), np.nan, dtype=np.float64)
        if lat is not None and lon is not None:
            has = (flags[rows] & _HAS_GPS) != 0
            pts = latlon[rows[has]].astype(np.float64)
            metres[has] = _haversine_m(lat, lon, pts[:, 0], pts[:, 1])
        with np.errstate(invalid="ignore"):
            near = metres <= max_metres
            keep = (sims >= min_similarity) | near
            bonus = np.where(near, 0.1 * (1 - metres / max_metres), 0.0)
        score = np.nan_to_num(sims, nan=0.0) + bonus
        picked = np.flatnonzero(keep)
        picked = picked[np.argsort(-score[picked], kind="stable")[:limit]]
        return [
            SceneCandidate(
                int(photo[rows[i]]),
                int(household[rows[i]]),
                None if np.isnan(sims[i]) else round(float(sims[i]), 4),
                None if np.isnan(metres[i]) else round(float(metres[i]), 1),
            )
            for i in picked
        ]

    def memory(self) -> dict[str, int]:
        """Bytes by part: ``resident`` (anonymous RAM) and ``file_backed`` (page cache)."""
        with self._lock:
            ram: list[np.ndarray] = [self._photo, self._household, self._county, self._flags]
            resident = self._pdq.nbytes + sum(a.nbytes for a in ram)
            resident += self._latlon.resident_bytes + self._emb.resident_bytes
            total = self._latlon.nbytes + self._emb.nbytes
            spilled = total - self._latlon.resident_bytes - self._emb.resident_bytes
            return {"resident": resident, "file_backed": spilled}

    def memory_bytes(self) -> int:
        """Resident bytes (what the RAM budget counts)."""
        return self.memory()["resident"]


def _grown(array: np.ndarray, used: int, need: int) -> np.ndarray:
    if need <= len(array):
        return array
    grown = np.zeros(max(need, 1024, len(array) * 3 // 2), dtype=array.dtype)
    grown[:used] = array[:used]
    return grown


def _haversine_m(lat: float, lon: float, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    r = 6_371_000.0
    p1, p2 = math.radians(lat), np.radians(lats)
    dphi = p2 - p1
    dlmb = np.radians(lons) - math.radians(lon)
    a = np.sin(dphi / 2) ** 2 + math.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return 2 * r * np.arcsin(np.sqrt(np.clip(a, 0, 1)))
