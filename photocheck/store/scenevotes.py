"""Same-scene candidates of the service: descriptor votes per county, from stored features.

The same rule as `photocheck dedup` (``similarity.retrieval.DescriptorVoteIndex``: each
photo's best XFeat descriptors vote for the photos holding near ones), one index per
county, since a household's photo is only compared with its county's.

Several processes (``serve --workers N``, ``photocheck worker``) each hold their own
indexes and catch up from the database, as the PDQ index does: a county's index
remembers the highest photo id it has looked at and reads the county's rows above it
(``photos.scene``, the features every scene check stores). A photo stored but not yet
checked has no features in its row: ``features_of`` makes them (the intake shares them
with that photo's own check, or decodes its original), so an earlier photo is never
missed because its check is still queued; a row whose features are missing for
another reason (the start-up backfill has not reached it) is looked at again at the
next catch-up.

Memory is bounded: the county indexes are kept most recently used first, and the
least recently used are dropped (rebuilt from the stored features when needed
again) while their sum exceeds ``budget_bytes``; the county in use is always kept.
``scripts/bench_scene_scale.py --synthetic 100000`` measures the bytes per photo.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy import select

from ..similarity.retrieval import DescriptorVoteIndex
from ..similarity.xfeat_scene import SceneFeatures, is_current_format
from .db import Database
from .models import Household, Photo

__all__ = ["DEFAULT_BUDGET_BYTES", "CountyVoteIndexes", "VotedPhoto"]

# ~9.3 kB a photo in the inverted file (128 x (64 B codes + 8 B id + 4 B owner)): two
# counties of 100,000 photos each.
DEFAULT_BUDGET_BYTES = 2 * 1024**3
_BATCH = 256  # rows read at a time (~135 kB of features each)


@dataclass(frozen=True)
class VotedPhoto:
    photo_id: int
    household_id: int
    votes: int


@dataclass
class _County:
    index: DescriptorVoteIndex = field(default_factory=DescriptorVoteIndex)
    households: dict[int, int] = field(default_factory=dict)  # photo id -> household id
    seen: int = 0  # every row of the county up to this id has been looked at
    missing: set[int] = field(default_factory=set)  # looked at, no usable features yet
    lock: threading.Lock = field(default_factory=threading.Lock)


class CountyVoteIndexes:
    """One ``DescriptorVoteIndex`` per county, caught up from the stored features."""

    def __init__(
        self,
        db: Database,
        features_of: Callable[[int], bytes | None],
        budget_bytes: int = DEFAULT_BUDGET_BYTES,
    ) -> None:
        self.db, self.features_of, self.budget_bytes = db, features_of, budget_bytes
        self._lock = threading.Lock()
        self._counties: OrderedDict[int, _County] = OrderedDict()

    def candidates(
        self,
        county_id: int,
        features: SceneFeatures,
        top: int,
        keep: Callable[[int, int], bool],
        below: int | None = None,
    ) -> list[VotedPhoto]:
        """The ``top`` photos of the county with the most votes among those that
        ``keep(photo_id, household_id)`` accepts (other households' photos), after
        catching up with the photos stored since the last look (those with ids under
        ``below`` only: a check compares with earlier photos, and its own features are
        not to be made twice)."""
        county = self._county(county_id)
        with county.lock:
            self._catch_up(county_id, county, below)
            owners = county.households

            def accepted(photo_id: object) -> bool:
                pid = int(photo_id)  # type: ignore[call-overload]
                return keep(pid, owners[pid])

            found = county.index.query(features, top, keep=accepted)
        self._evict()
        return [VotedPhoto(int(c.key), owners[int(c.key)], c.votes) for c in found]  # type: ignore[call-overload]

    def memory_bytes(self) -> int:
        with self._lock:
            return sum(c.index.memory_bytes() for c in self._counties.values())

    def counties(self) -> list[int]:
        """The counties held, least recently used first."""
        with self._lock:
            return list(self._counties)

    def _county(self, county_id: int) -> _County:
        with self._lock:
            county = self._counties.get(county_id)
            if county is None:
                county = self._counties[county_id] = _County()
            self._counties.move_to_end(county_id)
            return county

    def _evict(self) -> None:
        with self._lock:
            total = sum(c.index.memory_bytes() for c in self._counties.values())
            while total > self.budget_bytes and len(self._counties) > 1:
                _, dropped = self._counties.popitem(last=False)
                total -= dropped.index.memory_bytes()

    def _catch_up(self, county_id: int, county: _County, below: int | None) -> None:
        """Add the county's photos above ``seen`` (under ``below``) and the ones still
        missing."""
        while True:
            where = [Household.county_id == county_id, Photo.id > county.seen]
            if below is not None:
                where.append(Photo.id < below)
            with self.db.session() as session:
                rows = session.execute(
                    select(Photo.id, Photo.household_id, Photo.scene, Photo.scene_checked)
                    .join(Household, Household.id == Photo.household_id)
                    .where(*where)
                    .order_by(Photo.id)
                    .limit(_BATCH)
                ).all()
            if not rows:
                break
            self._add(county, rows)
            county.seen = rows[-1][0]
        retry = sorted(p for p in county.missing if below is None or p < below)
        for lo in range(0, len(retry), _BATCH):
            with self.db.session() as session:
                rows = session.execute(
                    select(Photo.id, Photo.household_id, Photo.scene, Photo.scene_checked).where(
                        Photo.id.in_(retry[lo : lo + _BATCH])
                    )
                ).all()
            county.missing.difference_update(retry[lo : lo + _BATCH])
            self._add(county, rows)

    def _add(self, county: _County, rows: Iterable[tuple[int, int, bytes | None, bool]]) -> None:
        items: list[tuple[int, SceneFeatures]] = []
        for photo_id, household_id, stored, checked in rows:
            data = stored
            if data is None and not checked:  # its check is queued: features made now
                data = self.features_of(photo_id)
            if data == b"":
                continue  # a copy of another household's photo, or undecodable: never
            if data is None or not is_current_format(data):
                county.missing.add(photo_id)  # the backfill (re)makes them: look again
                continue
            try:
                items.append((photo_id, SceneFeatures.from_bytes(data)))
            except ValueError:
                continue  # truncated: verification would refuse them too
            county.households[photo_id] = household_id
        if items:
            county.index.add_many(items)
