"""Taking in one checked upload: duplicate search across households, then storage.

The photo checks (``check_photo``) have already run; here the report is extended with
DUPLICATE_PHOTO / SAME_SCENE found against other households' photos, the original is
made durable, and the row is committed. The order is what makes it safe:

1. outside any lock: the same-photo query (a copy needs no scene work), then the
   same-scene candidates (embedding cosine + GPS proximity in the county, other
   households only) verified geometrically against their stored features, at most
   ``SCENE_MAX_CANDIDATES`` of them; then the upload's own features, made once from
   the already-decoded working image, so every stored photo has them and no original
   is decoded again on the request path (older photos get theirs in a background
   backfill at start-up);
2. inside ``Database.write()``: the same-photo query again (exact digests from the
   database's indexed columns, PDQ from the index), the verdict, the insert and the
   commit; then the index is extended, still inside the lock. So of two identical
   photos uploaded at once, the second always sees the first.

Same-scene checks stay outside the lock on purpose: two households shooting the same
house within the same second can miss each other's SAME_SCENE (a review flag, not a
reject); the county audit's batch dedup finds them.

Shared sites follow one rule (``shares_site``): a site's photo may be used by exactly
the households linked to that site. Such a household's upload of its site's drone
photo is allowed, named in ``site_photo``, and its place is judged against the
site's point (a relocated household no longer lives at its registered point).

The blob is committed (checked, durable) before the row, so a crash never leaves a row
without its file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from sqlalchemy import func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, joinedload

from ..metadata.gps import haversine_m
from ..pipeline import Report
from ..policy import Policy
from ..reasons import ReasonCode
from ..similarity.scene import FORMAT_PREFIX
from ..verdict import Finding, Reason, Verdict, decide, explain
from .blobs import BlobStore, PendingBlob
from .db import Database
from .dupindex import DupEntry, DuplicateIndex, HashHit, embedding_to_bytes
from .models import Household, Photo, PhotoMatch, Town, Village
from .repo import dup_entries, export_name, record_photo
from .sites import DUPLICATE_SITE_PHOTO, SharedSite, _matching_site_photos, find_site

__all__ = [
    "FeatureQueue",
    "Intake",
    "IntakeResult",
    "MatchInfo",
    "SceneMatcher",
    "SitePhotoUse",
    "StageTimings",
    "Upload",
    "shares_site",
]

log = logging.getLogger(__name__)

# Same-scene candidates: content embeddings at least this similar (cosine of the
# 1280-d pooled features), or photos taken within this distance, are checked
# geometrically; at most this many per upload, most similar first.
SCENE_MIN_SIMILARITY = 0.70  # developer set: same scene 0.72-0.89, unrelated <= 0.59
SCENE_MAX_METRES = 30.0
SCENE_MAX_CANDIDATES = 2  # ~11 ms each: the dominant cost of an upload with candidates
# Stored uploads whose features are still to be made after the answer (working grey
# images, ~0.5 MB each); past this, an upload makes its own before answering.
FEATURE_QUEUE_MAX = 64
FEATURE_BATCH = 16  # features written per transaction by the background thread


class SceneMatcher(Protocol):
    """Local features + geometric verification (``store.scenes.OrbSceneMatcher``)."""

    def features(self, grey: np.ndarray) -> bytes: ...

    def features_of_blob(self, sha256: str) -> bytes | None: ...

    def needs_features(self, stored: bytes | None) -> bool: ...

    def verify(self, a: bytes, b: bytes) -> dict[str, Any] | None:
        """Evidence when ``a`` and ``b`` show the same scene, else None."""
        ...


@dataclass(frozen=True)
class Upload:
    household_id: int  # households.id
    user_id: int
    report: Report
    blob: PendingBlob | None  # None for practice uploads
    capture: dict[str, Any] | None = None
    embedding: Sequence[float] | None = None  # the content model's pooled features
    practice: bool = False


@dataclass(frozen=True)
class MatchInfo:
    relation: str  # same_photo | same_scene
    photo_id: int
    household_id: str  # the other household's code
    county: str
    village: str
    distance: float | None
    evidence: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "relation": self.relation,
            "photo_id": self.photo_id,
            "household_id": self.household_id,
            "county": self.county,
            "village": self.village,
            "distance": self.distance,
            "evidence": self.evidence,
        }


@dataclass
class IntakeResult:
    household_code: str
    verdict: Verdict
    reasons: list[Reason]
    matches: list[MatchInfo] = field(default_factory=list)
    photo_id: int | None = None  # None when nothing was stored (practice)
    site_photo: dict[str, str] | None = None  # a linked household used its site's photo
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage, not in JSON

    @property
    def retake_required(self) -> bool:
        return self.verdict is Verdict.REJECT

    def to_json(self) -> dict[str, Any]:
        out = {
            "photo_id": self.photo_id,
            "household_id": self.household_code,
            "verdict": self.verdict.value,
            "reasons": [r.to_json() for r in self.reasons],
            "matches": [m.to_json() for m in self.matches],
            "retake_required": self.retake_required,
        }
        if self.site_photo is not None:
            out["site_photo"] = self.site_photo
        return out


class Intake:
    """Owns the duplicate index; one per process, shared by all request threads."""

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        policy: Policy,
        scene: SceneMatcher | None = None,
        *,
        index_dir: Path | None = None,
    ) -> None:
        self.db, self.blobs, self.policy, self.scene = db, blobs, policy, scene
        # GPS points and reduced embeddings live in an unlinked file there (page cache);
        # default: beside the staging folder (a local disk, also with an S3 store)
        spill = index_dir if index_dir is not None else blobs.tmp / "dupindex"
        self.index = DuplicateIndex(spill_dir=spill)
        self.timings = StageTimings()
        self._backfill: threading.Thread | None = None
        self.features = FeatureQueue(scene.features, db) if scene is not None else None

    def rebuild_index(self, *, backfill: bool = True) -> int:
        """Load every stored photo into the index; returns how many. With ``backfill``,
        photos stored without scene features get them in a background thread."""
        with self.db.write_lock, self.db.session() as session:
            self.index.build(dup_entries(session))
        if backfill and self.scene is not None:
            self._backfill = threading.Thread(
                target=self.backfill_scene_features, name="scene-backfill", daemon=True
            )
            self._backfill.start()
        return len(self.index)

    def backfill_scene_features(self, batch: int = 32) -> int:
        """Make the features of stored photos that have none (stored before features were
        made at upload) or have them in an older format, decoding each original once;
        returns how many rows it filled.

        Runs off the request path (a thread started by ``rebuild_index``). A photo
        whose original cannot be decoded gets empty features, so it is tried once.
        """
        if self.scene is None:
            return 0
        done, after = 0, 0
        while True:
            with self.db.session() as session:
                todo = session.execute(
                    select(Photo.id, Photo.sha256)
                    .where(_needs_features(), Photo.id > after)
                    .order_by(Photo.id)
                    .limit(batch)
                ).all()
            if not todo:
                return done
            queued = self.features.held([pid for pid, _ in todo]) if self.features else {}
            made = {
                pid: self.scene.features_of_blob(sha) or b""
                for pid, sha in todo
                if pid not in queued  # a fresh upload's: the feature queue makes them
            }
            after = todo[-1][0]
            if not made:
                continue
            with self.db.write() as session:
                for row in session.scalars(select(Photo).where(Photo.id.in_(list(made)))):
                    # derived data only; the record is unchanged
                    if self.scene.needs_features(row.scene):
                        row.scene = made[row.id]
                        done += 1

    def submit(
        self,
        upload: Upload,
        on_commit: Callable[[Session, IntakeResult], None] | None = None,
    ) -> IntakeResult:
        """Find duplicates, decide, store (unless practice). ``on_commit`` runs inside
        the storing transaction (the idempotency record is written there)."""
        report, clock = upload.report, self.timings.clock()
        with self.db.session() as session:
            household = _load_household(session, upload.household_id)
            site = _linked_site(session, household)
            copied = self._same_photo_matches(session, household, report)  # no scene work
        lat, lon = _photo_point(report, upload.capture)
        own = _OwnFeatures(self.scene, report)
        clock.lap("same_photo")
        scene_hits = [] if copied else self._scene_matches(household, upload, lat, lon, own, clock)
        # every stored photo gets its features (no decode later): made now if they were
        # needed above or the queue is full, else after the answer (FeatureQueue)
        defer = (
            not upload.practice
            and own.computed is None
            and report.photo is not None
            and self.features is not None
            and not self.features.full()
        )
        if not upload.practice and self.scene is not None and not defer:
            own.get()
            clock.lap("features")

        blob_path = None
        if not upload.practice and upload.blob is not None:
            blob_path = self.blobs.commit(upload.blob)  # durable before its row; no lock needed
            clock.lap("blob_write")
        with self.db.write() as session:
            clock.lap("write_lock")  # waiting for the other uploads' writes
            household = _load_household(session, upload.household_id)  # fresh, in the lock
            same = self._same_photo_matches(session, household, report)
            matches = same or scene_hits
            findings = _duplicate_findings(same, scene_hits)
            site_use: SitePhotoUse | None = None
            if not same:  # a shared site's drone photo: only its linked households may use it
                site_findings, site_use = self._site_photo_check(session, household, report)
                findings = site_findings or findings
            reasons = _merge(report.reasons, findings, self.policy)
            if site is not None:
                reasons = _judge_location_by_site(reasons, site, lat, lon, self.policy)
            result = IntakeResult(
                household.household_code,
                decide(reasons),
                reasons,
                matches=matches,
                site_photo=site_use.to_json() if site_use else None,
            )
            if blob_path is None:
                result.timings = clock.done()
                return result
            photo = record_photo(
                session,
                household,
                _photo_row(upload, result, blob_path, export_name(household, _fmt(report))),
                [_match_row(m) for m in matches],
            )
            photo.gps_lat, photo.gps_lon = lat, lon
            photo.scene = None if defer else (own.computed or b"")
            if upload.embedding is not None:
                photo.embedding = embedding_to_bytes(upload.embedding)
            session.flush()
            result.photo_id = photo.id
            if on_commit is not None:
                on_commit(session, result)
            clock.lap("db_write")
            session.commit()
            clock.lap("db_commit")
            if defer:
                assert self.features is not None and report.photo is not None
                self.features.put(photo.id, report.photo.grey)
            if not same:  # a copy of another household's photo stays out (see dup_entries)
                self.index.add(_entry(photo, household, upload.embedding))
        result.timings = clock.done()
        return result

    def _same_photo_matches(
        self, session: Session, household: Household, report: Report
    ) -> list[MatchInfo]:
        """Exact bytes or pixels (the database's indexed digests), then PDQ (the index)."""
        fp = report.fingerprint
        hits = _exact_hits(session, fp.sha256, fp.pixel_sha256)
        known = {h.photo_id for h in hits}
        hits += [
            h
            for h in self.index.same_photo(
                pdq_variants=fp.pdq_dihedral or ((fp.pdq,) if fp.pdq else ()),
                max_distance=self.policy.similarity.same_photo_max_distance,
            )
            if h.photo_id not in known
        ]
        return _describe(session, household, hits)

    def _site_photo_check(
        self, session: Session, household: Household, report: Report
    ) -> tuple[list[Finding], SitePhotoUse | None]:
        """DUPLICATE_PHOTO for a site's drone photo used by a household not linked to that
        site; for a linked household, which site photo it used."""
        max_distance = self.policy.similarity.same_photo_max_distance
        matches = _matching_site_photos(
            session, household.county_id, report.fingerprint, max_distance
        )
        for match in matches:
            site = match.photo.site
            if shares_site(household, site.site_code):
                continue
            evidence = {
                "via": DUPLICATE_SITE_PHOTO,
                "hash": match.via,
                "distance": match.distance,
                "site_id": site.site_code,
                "site_name": site.name,
                "site_photo": match.photo.canonical_name,
                "household_site_id": household.site_code,
                "household_category": household.category,
            }
            return [Finding(ReasonCode.DUPLICATE_PHOTO, evidence)], None
        if matches:
            first = matches[0]
            return [], SitePhotoUse(first.photo.site.site_code, first.photo.canonical_name)
        return [], None

    def _scene_matches(
        self,
        household: Household,
        upload: Upload,
        lat: float | None,
        lon: float | None,
        own: _OwnFeatures,
        clock: _Clock,
    ) -> list[MatchInfo]:
        if self.scene is None or (upload.embedding is None and lat is None):
            return []
        candidates = self.index.scene_candidates(
            county_id=household.county_id,
            exclude_household=household.id,
            embedding=np.asarray(upload.embedding) if upload.embedding is not None else None,
            lat=lat,
            lon=lon,
            min_similarity=SCENE_MIN_SIMILARITY,
            max_metres=SCENE_MAX_METRES,
            limit=SCENE_MAX_CANDIDATES * 4,
        )
        clock.lap("scene_candidates")
        if not candidates:
            return []
        # before the rows are read: a photo leaves the queue only once its row has them
        queued = self.features.held([c.photo_id for c in candidates]) if self.features else {}
        with self.db.session() as session:
            others = _households(session, {c.household_id for c in candidates})
            eligible = [
                c
                for c in candidates
                if c.household_id in others and _counts_against(household, others[c.household_id])
            ][:SCENE_MAX_CANDIDATES]
            stored = _stored_features(session, [c.photo_id for c in eligible])
        out: list[MatchInfo] = []
        for cand in eligible:
            theirs = stored.get(cand.photo_id)  # None: not backfilled yet, never decoded here
            if theirs is None and cand.photo_id in queued:
                theirs = queued[cand.photo_id].get(self.scene.features) or None
            mine = own.get() if theirs else None
            evidence = self.scene.verify(mine, theirs) if mine and theirs else None
            if evidence is None:
                continue
            evidence = {
                **evidence,
                "embedding_similarity": cand.similarity,
                "metres": cand.metres,
            }
            out.append(
                _info("same_scene", cand.photo_id, others[cand.household_id], None, evidence)
            )
        clock.lap("verification")
        return out


@dataclass(frozen=True)
class SitePhotoUse:
    """A linked household's upload is its site's registered drone photo (allowed)."""

    site_id: str
    site_photo: str  # canonical name

    def to_json(self) -> dict[str, str]:
        return {"site_id": self.site_id, "site_photo": self.site_photo}


class FeatureQueue:
    """Scene features of stored uploads, made after the answer by a background thread.

    An upload without same-scene candidates needs no features of its own to be
    answered: they are only there for later uploads to compare against. Making them
    (~20 ms of CPU) after the answer, on a thread at lower CPU priority, takes them off
    the request path. Until its features are written, the photo's working grey image
    waits here, and a later upload that has it as a candidate makes them itself
    (``held``): no comparison is missed. At a crash the queue is lost; the photos keep
    ``scene`` NULL and the start-up backfill decodes their originals instead.
    """

    def __init__(self, make: Callable[[np.ndarray], bytes], db: Database) -> None:
        self._make, self._db = make, db
        self._cond = threading.Condition()
        self._pending: dict[int, _Pending] = {}
        self._thread: threading.Thread | None = None

    def full(self) -> bool:
        """Whether the next upload should make its features itself (bounded memory;
        concurrent uploads may overshoot by a few)."""
        with self._cond:
            return len(self._pending) >= FEATURE_QUEUE_MAX

    def put(self, photo_id: int, grey: np.ndarray) -> None:
        """Queue a committed photo's working image (its row has ``scene`` NULL)."""
        with self._cond:
            self._pending[photo_id] = _Pending(np.array(grey, copy=True))
            self.start()
            self._cond.notify_all()

    def start(self) -> None:
        """Start the background thread unless it runs (``put`` does this)."""
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="scene-features", daemon=True
                )
                self._thread.start()

    def held(self, photo_ids: Sequence[int]) -> dict[int, _Pending]:
        """The queued photos among ``photo_ids`` (their features: ``.get(make)``)."""
        with self._cond:
            return {pid: self._pending[pid] for pid in photo_ids if pid in self._pending}

    def __len__(self) -> int:
        with self._cond:
            return len(self._pending)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every queued photo's features are written; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending, timeout)

    def _run(self) -> None:
        _lower_priority()
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._pending))
                batch = list(self._pending.items())[:FEATURE_BATCH]
            made = {pid: item.get(self._make) for pid, item in batch}
            try:
                with self._db.write() as session:
                    rows = session.scalars(select(Photo).where(Photo.id.in_(list(made))))
                    for row in rows:
                        if row.scene is None:  # derived data only; the record is unchanged
                            row.scene = made[row.id]
            except SQLAlchemyError:
                n = len(made)
                log.exception("scene features of %d photos not stored (backfilled at start)", n)
            with self._cond:
                for pid in made:
                    self._pending.pop(pid, None)
                self._cond.notify_all()


class _Pending:
    """One queued photo: its grey working image, and its features once made (once)."""

    def __init__(self, grey: np.ndarray) -> None:
        self.grey = grey
        self.features: bytes | None = None
        self._lock = threading.Lock()

    def get(self, make: Callable[[np.ndarray], bytes]) -> bytes:
        with self._lock:
            if self.features is None:
                self.features = make(self.grey)
            return self.features


def _lower_priority() -> None:
    """Nice the calling thread (Linux: per thread) so request threads come first."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not allowed
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


class StageTimings:
    """Seconds spent per intake stage, summed over uploads (for ``bench_upload.py``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    def clock(self) -> _Clock:
        return _Clock(self)

    def add(self, laps: dict[str, float]) -> None:
        with self._lock:
            for stage, secs in laps.items():
                self.seconds[stage] += secs
                self.counts[stage] += 1

    def to_json(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {
                k: {"total_s": round(v, 4), "count": self.counts[k]}
                for k, v in self.seconds.items()
            }


class _Clock:
    def __init__(self, owner: StageTimings) -> None:
        self._owner = owner
        self._laps: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self._laps[stage] = self._laps.get(stage, 0.0) + now - self._t
        self._t = now

    def done(self) -> dict[str, float]:
        self._owner.add(self._laps)
        return self._laps


class _OwnFeatures:
    """The upload's scene features, made once from the already-decoded working image."""

    def __init__(self, scene: SceneMatcher | None, report: Report) -> None:
        self._scene, self._report = scene, report
        self.computed: bytes | None = None

    def get(self) -> bytes | None:
        if self.computed is None and self._scene is not None and self._report.photo is not None:
            self.computed = self._scene.features(self._report.photo.grey)
        return self.computed


def shares_site(household: Household, site_code: str | None) -> bool:
    """The one shared-site rule (DESIGN §2.3): a photo of a shared site may be used by
    exactly the households linked to that site, whatever their category."""
    return bool(site_code) and household.site_code == site_code


def _stored_features(session: Session, photo_ids: list[int]) -> dict[int, bytes]:
    if not photo_ids:
        return {}
    rows = session.execute(select(Photo.id, Photo.scene).where(Photo.id.in_(photo_ids)))
    return {pid: scene for pid, scene in rows if scene}


def _exact_hits(session: Session, sha256: str, pixel_sha256: str | None) -> list[HashHit]:
    """Stored photos with the same bytes or pixels (indexed columns), except copies
    already found to be another household's photo (as the index leaves them out)."""
    copies = select(PhotoMatch.id).where(
        PhotoMatch.photo_id == Photo.id, PhotoMatch.relation == "same_photo"
    )
    same = Photo.sha256 == sha256
    if pixel_sha256:
        same = or_(same, Photo.pixel_sha256 == pixel_sha256)
    rows = session.execute(
        select(Photo.id, Photo.sha256).where(same, ~copies.exists()).order_by(Photo.id)
    )
    return [HashHit(pid, 0, "sha256" if sha == sha256 else "pixel_sha256") for pid, sha in rows]


def _linked_site(session: Session, household: Household) -> SharedSite | None:
    if not household.site_code:
        return None
    return find_site(session, household.county_id, household.site_code)


def _judge_location_by_site(
    reasons: list[Reason],
    site: SharedSite,
    lat: float | None,
    lon: float | None,
    policy: Policy,
) -> list[Reason]:
    """A household linked to a site lives there: a photo within the site's radius of the
    site's point is in place, however far the household's old registered point is."""
    if lat is None or lon is None or site.lat is None or site.lon is None:
        return reasons
    if haversine_m(lat, lon, site.lat, site.lon) > policy.area.site_radius_m:
        return reasons
    return [r for r in reasons if r.code is not ReasonCode.GPS_OUTSIDE_AREA]


def _load_household(session: Session, household_id: int) -> Household:
    household = session.scalar(
        select(Household)
        .options(joinedload(Household.village).joinedload(Village.town).joinedload(Town.county))
        .where(Household.id == household_id)
    )
    if household is None:
        msg = f"no household with id {household_id}"
        raise LookupError(msg)
    return household


def _households(session: Session, ids: set[int]) -> dict[int, Household]:
    if not ids:
        return {}
    rows = session.scalars(
        select(Household)
        .options(joinedload(Household.village).joinedload(Village.town).joinedload(Town.county))
        .where(Household.id.in_(ids))
    )
    return {h.id: h for h in rows}


def _counts_against(household: Household, other: Household) -> bool:
    """A match with ``other`` is a problem unless it is the same household (a retake)
    or ``other`` is linked to the site this household is linked to (``shares_site``)."""
    if other.id == household.id:
        return False
    return not shares_site(household, other.site_code)


def _describe(session: Session, household: Household, hits: list[HashHit]) -> list[MatchInfo]:
    """The hits that count against ``household``, with the other household named."""
    if not hits:
        return []
    owners = dict(
        session.execute(
            select(Photo.id, Photo.household_id).where(Photo.id.in_([h.photo_id for h in hits]))
        ).all()
    )
    others = _households(session, set(owners.values()))
    out = []
    for hit in hits:
        other = others.get(owners.get(hit.photo_id, -1))
        if other is None or not _counts_against(household, other):
            continue
        evidence = {"via": hit.via, "pdq_distance": hit.distance}
        out.append(_info("same_photo", hit.photo_id, other, float(hit.distance), evidence))
    return out


def _info(
    relation: str, photo_id: int, other: Household, distance: float | None, evidence: dict
) -> MatchInfo:
    return MatchInfo(
        relation=relation,
        photo_id=photo_id,
        household_id=other.household_code,
        county=other.village.town.county.name,
        village=other.village.name,
        distance=distance,
        evidence=evidence,
    )


def _duplicate_findings(same: list[MatchInfo], scene: list[MatchInfo]) -> list[Finding]:
    if same:
        first = same[0]
        evidence = {
            "other_household_id": first.household_id,
            "other_county": first.county,
            "other_village": first.village,
            "other_photo_id": first.photo_id,
            "distance": first.distance,
            "count": len(same),
        }
        return [Finding(ReasonCode.DUPLICATE_PHOTO, evidence)]
    if scene:
        first = scene[0]
        evidence = {
            "other_household_id": first.household_id,
            "other_village": first.village,
            "other_photo_id": first.photo_id,
            "count": len(scene),
        }
        return [Finding(ReasonCode.SAME_SCENE, evidence)]
    return []


def _merge(reasons: Sequence[Reason], findings: list[Finding], policy: Policy) -> list[Reason]:
    """The report's reasons plus the duplicate findings, ordered as ``explain`` does."""
    if not findings:
        return list(reasons)
    extra = explain(findings, policy)
    codes = {r.code for r in reasons}
    merged = list(reasons) + [r for r in extra if r.code not in codes]
    order = list(ReasonCode)
    return sorted(merged, key=lambda r: (r.severity.value != "reject", order.index(r.code)))


def _photo_point(
    report: Report, capture: dict[str, Any] | None
) -> tuple[float | None, float | None]:
    """Where the photo was taken: EXIF GPS, else the app's fix."""
    gps = report.metadata.gps if report.metadata else None
    if gps is not None:
        return gps.lat, gps.lon
    if capture and capture.get("lat") is not None and capture.get("lon") is not None:
        return float(capture["lat"]), float(capture["lon"])
    return None, None


def _fmt(report: Report) -> str | None:
    return report.photo.format if report.photo else report.metrics.get("format")


def _photo_row(upload: Upload, result: IntakeResult, blob_path: str, name: str) -> Photo:
    report = upload.report
    fp = report.fingerprint
    assert upload.blob is not None
    return Photo(
        sha256=fp.sha256,
        size=upload.blob.size,
        format=_fmt(report),
        blob_path=blob_path,
        export_name=name,
        verdict=result.verdict.value,
        reasons=_plain([r.to_json() for r in result.reasons]),
        metrics=_plain(report.metrics),
        exif=_plain(report.metadata.to_json()) if report.metadata else None,
        capture=_plain(upload.capture),
        pdq=fp.pdq.hex() if fp.pdq else None,
        pdq_quality=fp.pdq_quality,
        phash=f"{fp.phash:016x}" if fp.phash is not None else None,
        pixel_sha256=fp.pixel_sha256,
        uploaded_by=upload.user_id,
        policy_version=report.policy_version,
        model_version=report.model_version,
    )


def _match_row(match: MatchInfo) -> PhotoMatch:
    return PhotoMatch(
        other_photo_id=match.photo_id,
        relation=match.relation,
        distance=match.distance,
        evidence=_plain(match.evidence),
    )


def _plain(value: Any) -> Any:
    """JSON-safe copy for a JSON column (numpy scalars become numbers, others strings)."""
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _entry(photo: Photo, household: Household, embedding: Sequence[float] | None) -> DupEntry:
    return DupEntry(
        photo_id=photo.id,
        household_id=household.id,
        county_id=household.county_id,
        site_code=household.site_code,
        pdq=bytes.fromhex(photo.pdq) if photo.pdq else None,
        embedding=np.asarray(embedding, dtype=np.float32) if embedding is not None else None,
        lat=photo.gps_lat,
        lon=photo.gps_lon,
        sha256=photo.sha256,
        pixel_sha256=photo.pixel_sha256,
    )


def _needs_features() -> Any:
    """Rows whose scene features are missing or in an older format (empty bytes mark an
    original that could not be decoded: tried once, not again)."""
    prefix = FORMAT_PREFIX
    return or_(
        Photo.scene.is_(None),
        (func.length(Photo.scene) > 0) & (func.substr(Photo.scene, 1, len(prefix)) != prefix),
    )
