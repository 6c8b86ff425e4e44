"""The photos of a county as numpy columns, read from the records once.

Every detector needs the same few fields of every photo: where, when, whose. At county
scale reading them is the costly part: 100,000 records (each with its ``__dict__`` and
its float, str and datetime objects) no longer fit in the CPU cache, so every pass over
them waits on memory and a pass costs 10x more per photo at 100,000 than at 10,000.
So the records are read in one pass, here, and the detectors work on arrays.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .geo import EARTH_RADIUS_M
from .records import PhotoRecord

__all__ = ["EPOCH", "PhotoColumns", "haversine_m_np", "photo_columns"]

EPOCH = dt.datetime(2000, 1, 1)  # origin of the ``t`` column, naive local clock


@dataclass(frozen=True, eq=False)
class PhotoColumns:
    """Column ``k`` of every array is ``photos[k]``.

    located/lat/lon: ``PhotoRecord.position`` (camera GPS, else the app's fix); lat/lon
        are NaN where it is None.
    timed/t: ``PhotoRecord.taken_at`` as seconds since ``EPOCH`` (the same float as
        ``(taken_at - EPOCH).total_seconds()``); NaN where it is None.
    verifier/village: integer codes, equal code = equal ID, numbered in order of
        first appearance. Households are coded on demand (``household_codes``): only
        candidates need them, and a dict of every household is a cache miss per photo.
    reason_flagged / thumbnail_mismatch / in_app_without_camera: candidates of the
        single-photo findings that depend on record fields only.
    """

    photos: Sequence[PhotoRecord]
    photo_ids: list[str]
    located: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    timed: np.ndarray
    t: np.ndarray
    verifier: np.ndarray
    village: np.ndarray
    village_ids: list[str]  # village code -> village_id
    reason_flagged: np.ndarray
    thumbnail_mismatch: np.ndarray
    in_app_without_camera: np.ndarray

    def __len__(self) -> int:
        return len(self.photos)

    def household_codes(self, idx: np.ndarray) -> np.ndarray:
        """Integer codes of the households of ``photos[idx]``; equal code = same
        household (codes are only comparable within one call)."""
        codes: dict[str, int] = {}
        photos = self.photos
        out = [codes.setdefault(photos[k].household_id, len(codes)) for k in idx.tolist()]
        return np.array(out, dtype=np.int64)


def photo_columns(photos: Iterable[PhotoRecord]) -> PhotoColumns:
    """One pass over the records; each field is read once."""
    photos = photos if isinstance(photos, list | tuple) else list(photos)
    n = len(photos)
    nan = math.nan
    epoch = EPOCH
    ids: list[str] = [""] * n
    lats, lons, ts = [nan] * n, [nan] * n, [nan] * n
    vf, vl = [0] * n, [0] * n
    vcodes: dict[str, int] = {}
    lcodes: dict[str, int] = {}
    unlocated, untimed, flagged, thumbs, no_camera = [], [], [], [], []
    for k, p in enumerate(photos):
        ids[k] = p.photo_id
        lat, lon, when, app = p.lat, p.lon, p.captured_at, None
        if lat is None or lon is None:
            app = p.app
            if app is not None and app.lat is not None and app.lon is not None:
                lat, lon = app.lat, app.lon
            else:
                lat = lon = None
        if when is None:
            app = p.app
            when = app.captured_at if app is not None else None
        if lat is None:
            unlocated.append(k)
        else:
            lats[k], lons[k] = lat, lon
        if when is None:
            untimed.append(k)
        else:
            if when.tzinfo is not None:
                when = when.replace(tzinfo=None)
            ts[k] = (when - epoch).total_seconds()
        vf[k] = vcodes.setdefault(p.verifier, len(vcodes))
        vl[k] = lcodes.setdefault(p.village_id, len(lcodes))
        if p.verdict != "accept" and p.reasons:
            flagged.append(k)
        if p.thumbnail is not None:
            thumbs.append(k)
        if not p.has_camera_metadata:
            no_camera.append(k)
    return PhotoColumns(
        photos=photos,
        photo_ids=ids,
        located=~_mask(n, unlocated),
        lat=np.array(lats, dtype=np.float64),
        lon=np.array(lons, dtype=np.float64),
        timed=~_mask(n, untimed),
        t=np.array(ts, dtype=np.float64),
        verifier=np.array(vf, dtype=np.int64),
        village=np.array(vl, dtype=np.int64),
        village_ids=list(lcodes),
        reason_flagged=_mask(n, [k for k in flagged if _reason_candidate(photos[k])]),
        thumbnail_mismatch=_mask(n, [k for k in thumbs if not _thumb_matches(photos[k])]),
        in_app_without_camera=_mask(n, [k for k in no_camera if _in_app(photos[k])]),
    )


def _thumb_matches(p: PhotoRecord) -> bool:
    return p.thumbnail is None or p.thumbnail.matches


def _reason_candidate(p: PhotoRecord) -> bool:
    return p.is_current and p.verdict in ("review", "reject")


def _in_app(p: PhotoRecord) -> bool:
    return p.app is not None and p.app.in_app


def _mask(n: int, idx: list[int]) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[idx] = True
    return out


def haversine_m_np(
    lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray
) -> np.ndarray:
    """``geo.haversine_m`` on arrays; equal to it up to a few ulps (numpy's own sin/cos),
    so callers re-check values at a threshold with the scalar function."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.minimum(1.0, np.sqrt(a)))
