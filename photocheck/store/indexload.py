"""Loading the duplicate index fast when a worker starts (scale-out, PostgreSQL).

A restarting worker must hold every stored photo before it answers an upload. Reading
them as ORM rows (``repo.dup_entries``: a Python object per photo, the 1280-d
embedding decoded per row) runs at ~20,000 photos/s, ~21 min at 25 M. Two faster ways,
neither making an object per photo:

* ``bulk_load``: the photos in id blocks, each block one ``string_agg`` of fixed-width
  binary records made by PostgreSQL (``int8send(id) || int4send(household) || pdq ||
  ...``), parsed by a numpy structured dtype in one call. One message per block, not
  one per row: on this machine ~3x faster than ``COPY ... (FORMAT BINARY)``, whose
  client loop handles one message per row. Households (for the county) and the
  copies (kept out of the index) are read the same way, not joined per row;
  embeddings (one fixed length) in smaller blocks, reduced to 128-d int8 as they
  come. All in one REPEATABLE READ transaction: one consistent picture.
* ``Snapshots``: the index's arrays (PDQ rows, the multi-index tables, ids, GPS,
  reduced embeddings) in ``.npy`` files with the high-water mark ``seen``; a restart
  loads them (no table rebuild, no embedding reduction) and then reads only the
  photos above ``seen`` from the database. A snapshot is taken only if its first and
  last photo are still the database's (same id, same SHA-256), so another database
  or a restored one is never mistaken for this one.

``bench_scale.py index`` measures both against ``dup_entries`` at 1 M / 5 M / 25 M.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, text

from .dupindex import EMBEDDING_DIMS, DuplicateIndex, IndexColumns, reduce_embeddings

__all__ = ["Snapshots", "bulk_load", "database_identity"]

log = logging.getLogger(__name__)

SNAPSHOT_VERSION = 1  # bump when the arrays' meaning changes
_PHOTO_BLOCK = 1 << 17  # ids per photos query (~8 MB of records)
_EMB_BLOCK = 1 << 14  # ids per embeddings query (~42 MB at 1280-d float16)
_PHOTO = np.dtype(
    [
        ("id", ">i8"),
        ("household", ">i4"),
        ("pdq", "u1", (32,)),
        ("has_pdq", ">i2"),
        ("lat", ">f8"),
        ("lon", ">f8"),
    ]
)
_HOUSEHOLD = np.dtype([("id", ">i4"), ("county", ">i4")])
_ZERO_PDQ = "decode(repeat('00', 32), 'hex')"
_PHOTOS_SQL = f"""
SELECT string_agg(
    int8send(p.id::int8) || int4send(p.household_id)
    || CASE WHEN length(p.pdq) = 64 THEN decode(p.pdq, 'hex') ELSE {_ZERO_PDQ} END
    || int2send(((length(p.pdq) = 64) IS TRUE)::int::int2)
    || float8send(coalesce(p.gps_lat, 'NaN')::float8)
    || float8send(coalesce(p.gps_lon, 'NaN')::float8), ''::bytea)
FROM photos p WHERE p.id > %s AND p.id <= %s
"""
_HOUSEHOLDS_SQL = """
SELECT string_agg(int4send(h.id) || int4send(h.county_id), ''::bytea)
FROM households h WHERE h.id > %s AND h.id <= %s
"""
_EMBEDDINGS_SQL = """
SELECT string_agg(int8send(p.id::int8) || p.embedding, ''::bytea)
FROM photos p WHERE p.id > %s AND p.id <= %s AND length(p.embedding) = %s
"""


def _records(blob: bytes | None, dtype: np.dtype) -> np.ndarray:
    if not blob:
        return np.zeros(0, dtype=dtype)
    if len(blob) % dtype.itemsize:
        msg = f"bulk read: {len(blob)} bytes is not a whole number of {dtype.itemsize}-byte records"
        raise ValueError(msg)
    rec = np.frombuffer(blob, dtype=dtype)
    ids = rec["id"]
    if len(ids) > 1 and not bool(np.all(np.diff(ids) > 0)):  # string_agg follows scan order
        rec = rec[np.argsort(ids, kind="stable")]
    return rec


@contextlib.contextmanager
def _snapshot_cursor(engine: Engine) -> Iterator[Any]:
    """A psycopg cursor in one REPEATABLE READ, READ ONLY transaction."""
    raw = engine.raw_connection()
    try:
        conn: Any = raw.driver_connection
        conn.rollback()
        with conn.cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield cur
        conn.rollback()
    finally:
        raw.close()


def _households(cur: Any) -> tuple[np.ndarray, np.ndarray]:
    cur.execute("SELECT coalesce(max(id), 0) FROM households")
    top = int(cur.fetchone()[0])
    ids, counties = [], []
    for lo in range(0, top, _PHOTO_BLOCK * 4):
        cur.execute(_HOUSEHOLDS_SQL, (lo, lo + _PHOTO_BLOCK * 4), binary=True)
        rec = _records(cur.fetchone()[0], _HOUSEHOLD)
        ids.append(rec["id"].astype(np.int64))
        counties.append(rec["county"].astype(np.int32))
    if not ids:
        return np.zeros(0, np.int64), np.zeros(0, np.int32)
    return np.concatenate(ids), np.concatenate(counties)


def _embedding_length(cur: Any, lo: int, hi: int) -> int | None:
    """The length of one stored embedding in (lo, hi] (all of a model's are alike)."""
    cur.execute(
        "SELECT length(embedding) FROM photos WHERE id > %s AND id <= %s "
        "AND embedding IS NOT NULL LIMIT 1",
        (lo, hi),
    )
    row = cur.fetchone()
    return None if row is None else int(row[0])


def _embeddings(cur: Any, lo: int, hi: int, length: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(photo ids, reduced int8 embeddings) of photos in (lo, hi]: the common length in
    blocks; any other length (an older model) row by row."""
    from .dupindex import embedding_from_bytes

    ids: list[np.ndarray] = []
    vecs: list[np.ndarray] = []
    if length is not None:
        rec_t = np.dtype([("id", ">i8"), ("emb", "<f2", (length // 2,))])
        for a in range(lo, hi, _EMB_BLOCK):
            cur.execute(_EMBEDDINGS_SQL, (a, min(hi, a + _EMB_BLOCK), length), binary=True)
            rec = _records(cur.fetchone()[0], rec_t)
            if len(rec):
                ids.append(rec["id"].astype(np.int64))
                vecs.append(reduce_embeddings(rec["emb"].astype(np.float32)))
    cur.execute(
        "SELECT id, embedding FROM photos WHERE id > %s AND id <= %s "
        "AND embedding IS NOT NULL AND length(embedding) <> %s",
        (lo, hi, length or -1),
    )
    for pid, data in cur.fetchall():
        ids.append(np.array([pid], dtype=np.int64))
        vecs.append(reduce_embeddings(embedding_from_bytes(bytes(data))))
    if not ids:
        return np.zeros(0, np.int64), np.zeros((0, EMBEDDING_DIMS), np.int8)
    order_ids = np.concatenate(ids)
    order = np.argsort(order_ids, kind="stable")
    return order_ids[order], np.concatenate(vecs)[order]


def _columns(cur: Any, after: int) -> Iterator[IndexColumns]:
    """The index rows of photos above ``after``, one id block at a time."""
    cur.execute("SELECT coalesce(max(id), 0) FROM photos")
    top = int(cur.fetchone()[0])
    if top <= after:
        return
    hh_ids, hh_county = _households(cur)
    cur.execute(
        "SELECT DISTINCT photo_id FROM photo_matches "
        "WHERE relation = 'same_photo' AND photo_id > %s",
        (after,),
    )
    copies = np.array(sorted(int(r[0]) for r in cur.fetchall()), dtype=np.int64)
    length: int | None = None
    for lo in range(after, top, _PHOTO_BLOCK):
        hi = min(top, lo + _PHOTO_BLOCK)
        if length is None:
            length = _embedding_length(cur, lo, hi)
        cur.execute(_PHOTOS_SQL, (lo, hi), binary=True)
        rec = _records(cur.fetchone()[0], _PHOTO)
        if len(copies):
            rec = rec[~np.isin(rec["id"], copies)]
        k = len(rec)
        if k == 0:
            continue
        ids = rec["id"].astype(np.int64)
        household = rec["household"].astype(np.int64)
        at = np.searchsorted(hh_ids, household)
        if not bool(np.all(hh_ids[np.minimum(at, len(hh_ids) - 1)] == household)):
            msg = "bulk read: a photo's household is missing"
            raise ValueError(msg)
        emb = np.zeros((k, EMBEDDING_DIMS), dtype=np.int8)
        has_emb = np.zeros(k, dtype=bool)
        e_ids, e_vecs = _embeddings(cur, lo, hi, length)
        if len(e_ids):
            rows = np.searchsorted(ids, e_ids)
            ok = (rows < k) & (ids[np.minimum(rows, k - 1)] == e_ids)  # copies drop out
            emb[rows[ok]], has_emb[rows[ok]] = e_vecs[ok], True
        latlon = np.stack([rec["lat"], rec["lon"]], axis=1).astype(np.float32)
        yield IndexColumns(
            photo_id=ids,
            household_id=household.astype(np.int32),
            county_id=hh_county[at],
            pdq=np.ascontiguousarray(rec["pdq"]).view(np.uint64).reshape(k, 4),
            has_pdq=rec["has_pdq"] != 0,
            latlon=latlon,
            embedding=emb,
            has_embedding=has_emb,
        )


def bulk_load(index: DuplicateIndex, engine: Engine, *, after: int = 0) -> int:
    """Fill ``index`` from PostgreSQL (``after=0``: replace its contents; else append
    the photos above ``after``); returns the highest photo id read (the new ``seen``)."""
    with _snapshot_cursor(engine) as cur:
        cur.execute("SELECT coalesce(max(id), 0) FROM photos")
        top = max(int(cur.fetchone()[0]), after)
        if after == 0:
            index.build_columns(_columns(cur, 0), capacity=top)
        else:
            for cols in _columns(cur, after):
                index.add_columns(cols)
    return top


def database_identity(engine: Engine, photo_ids: list[int]) -> dict[str, str | None]:
    """The SHA-256 of the given photos (what a snapshot is checked against)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, sha256 FROM photos WHERE id = ANY(:ids)"), {"ids": photo_ids}
        ).all()
    found: dict[int, str | None] = {int(r[0]): r[1] for r in rows}
    return {str(i): found.get(i) for i in photo_ids}


class Snapshots:
    """Snapshot files of one index in ``directory``: ``snapshot-<seen>-<pid>/`` folders
    of ``.npy`` arrays, and ``current.json`` naming the newest (replaced atomically,
    the two newest folders kept, so a loader never loses the one it is reading)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def _pointer(self) -> Path:
        return self.directory / "current.json"

    def save(self, index: DuplicateIndex, seen: int, engine: Engine) -> Path | None:
        """Write a snapshot (outside any lock: the arrays' first n rows never change);
        None when another process is writing one."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / ".lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None
            arrays = index.snapshot()
            photo = arrays["photo"]
            ends = [int(photo[0]), int(photo[-1])] if len(photo) else []
            started = time.perf_counter()
            name = f"snapshot-{seen}-{os.getpid()}"
            tmp = self.directory / f".{name}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            for key, arr in arrays.items():
                with open(tmp / f"{key}.npy", "wb") as f:
                    np.save(f, np.asarray(arr), allow_pickle=False)
                    f.flush()
                    os.fsync(f.fileno())
            meta = {
                "version": SNAPSHOT_VERSION,
                "seen": seen,
                "rows": len(photo),
                "embedding_dims": EMBEDDING_DIMS,
                "photos": database_identity(engine, ends),
            }
            (tmp / "meta.json").write_text(json.dumps(meta))
            os.replace(tmp, self.directory / name)
            pointer = self.directory / f".current.{os.getpid()}.tmp"
            pointer.write_text(json.dumps({"dir": name, **meta}))
            os.replace(pointer, self._pointer)
            self._prune(keep={name})
            log.info(
                "duplicate index snapshot: %d photos up to id %d in %.1f s",
                len(photo),
                seen,
                time.perf_counter() - started,
            )
            return self.directory / name

    def _prune(self, keep: set[str]) -> None:
        folders = sorted(
            (p for p in self.directory.glob("snapshot-*") if p.is_dir()),
            key=lambda p: p.stat().st_mtime,
        )
        for old in folders[:-2]:
            if old.name not in keep:
                shutil.rmtree(old, ignore_errors=True)

    def load(self, index: DuplicateIndex, engine: Engine) -> int | None:
        """Fill ``index`` from the newest snapshot that matches the database; returns
        its ``seen`` (then catch up above it), or None (no usable snapshot)."""
        try:
            pointer = json.loads(self._pointer.read_text())
            folder = self.directory / pointer["dir"]
            meta = json.loads((folder / "meta.json").read_text())
        except (OSError, ValueError, KeyError):
            return None
        if meta.get("version") != SNAPSHOT_VERSION or meta.get("embedding_dims") != (
            EMBEDDING_DIMS
        ):
            return None
        wanted = meta.get("photos", {})
        if database_identity(engine, [int(k) for k in wanted]) != wanted:
            log.warning("duplicate index snapshot %s is not this database's: ignored", folder)
            return None
        try:
            arrays = {
                p.stem: np.load(p, mmap_mode="r", allow_pickle=False) for p in folder.glob("*.npy")
            }
            if len(arrays["photo"]) != meta["rows"]:
                return None
            index.restore(arrays)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("duplicate index snapshot %s unreadable: %s", folder, exc)
            return None
        return int(meta["seen"])
