"""Taking in one checked upload: duplicate search across households, then storage.

The photo checks (``check_photo``) have already run; here the report is extended with
DUPLICATE_PHOTO found against other households' photos, the original is made durable,
and the row is committed. Whether two photos are the same photo or the same scene is
decided by the one duplicate engine (``similarity.engine``, also `photocheck dedup`'s);
what a match means for a household by the pure rules of ``similarity.rules``. This
module keeps storage and transactions.

On the request path (the answer):

1. outside any lock, after reading the index's high-water mark ``mark = seen`` (and
   the highest site-photo id): the household and its linked site, the exact digests
   of the stored photos and site photos (the database's indexed columns), the PDQ
   query over the whole index (median ~25 ms at 25 M photos, ``bench_scale.py index``);
2. inside ``Database.write()`` (on PostgreSQL one advisory lock for every worker):
   one statement for the newest ids and the household's current photo, the catch-up
   with the photos other processes committed above ``seen``, digests and PDQ against
   the photos above ``mark`` only (and the site photos above theirs), the shared-site
   rule, the verdict, the insert (Core, ``scene_checked`` false) and the commit; then
   the index is extended, still inside the lock. The lock is held for the writes, not
   the queries (``bench_scale.py lock``; every statement inside it gives the GIL
   away, and under load each hand-back waits its turn).

Why 1 + 2 misses nothing. Invariant: every stored photo the index should hold with
an id <= ``seen`` is in the index (``seen`` is raised only after the rows are added:
``catch_up``, ``submit``, ``rebuild_index``), so the query of step 1 saw every such
photo up to ``mark`` (and so did step 1's digest query, which runs after ``mark``
is read; site photos likewise). Photo rows are inserted and committed only inside the write
lock, so ids grow in commit order and, once step 2 has caught up inside the lock,
the index holds every committed photo; the photos above ``mark`` are exactly the
ones step 1 may have missed, and step 2 compares against all of them. So of two
copies of one photo uploaded at once through any two workers, the one that takes
the lock second sees the first (``tests/scale``: 20 trials through two processes;
``test_service_index_race``: a copy committed between the two steps).

After the answer, a ``scene_check`` job (``store.jobs``; a thread in the embedded
default, a PostgreSQL queue with workers) makes the photo's scene features from the
already-decoded working image it was handed (or the original, after a restart) and
verifies the candidates, earlier photos only (each pair is checked once, by the later
photo's job): photos within the PDQ verify radius (32-48 bits: a copy only if the
frames align), the ``SCENE_MAX_NEAR`` nearest taken within ``SCENE_MAX_METRES``, and
the policy's ``scene_candidates`` (8) with the most descriptor votes among the
county's photos (``scenevotes``: the rule `photocheck dedup` uses, one index per county
caught up from the stored features; ORB, not the default, keeps the content-embedding
ranking). Matches
become ``photo_matches`` rows and reasons of the photo (its verdict is decided again),
then ``scene_checked`` turns true. Until then ``GET /households/{id}`` says "scene check
pending". A crash between answer and check loses nothing: the start-up enqueues every
photo still unchecked.

Shared sites follow one rule (``rules.shares_site``): a site's photo may be used by
exactly the households linked to that site. Such a household's upload of its site's
drone photo is allowed, named in ``site_photo``, and its place is judged against the
site's point (a relocated household no longer lives at its registered point).

The blob is committed (checked, durable) before the row, so a crash never leaves a row
without its file.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, joinedload

from ..metadata.gps import haversine_m
from ..pipeline import Report
from ..policy import Policy
from ..reasons import ReasonCode
from ..similarity.engine import (
    SAME_PHOTO,
    SAME_SCENE,
    StoredHashes,
    pdq_distance,
    query_variants,
)
from ..similarity.engine import (
    decide as decide_pair,
)
from ..similarity.rules import (
    MatchInfo,
    SiteHit,
    SitePhotoUse,
    counts_against,
    duplicate_findings,
    merge_findings,
    reason_from_json,
    shares_site,
    site_photo_outcome,
)
from ..similarity.xfeat_scene import STAGE_NN, SceneFeatures, is_current_format
from ..verdict import Finding, Reason, Verdict, decide
from .blobs import BlobStore, PendingBlob
from .db import Database
from .dupindex import (
    DupEntry,
    DuplicateIndex,
    HashHit,
    embedding_from_bytes,
    embedding_to_bytes,
)
from .foreground import Foreground
from .indexload import Snapshots, bulk_load
from .jobs import Jobs, ThreadJobs
from .models import Household, Photo, PhotoMatch, Town, Village
from .repo import dup_entries, export_name, record_photo
from .scenevotes import DEFAULT_BUDGET_BYTES, CountyVoteIndexes
from .sites import SharedSite, SitePhoto, SitePhotoMatch, _matching_site_photos, find_site

__all__ = [
    "SCENE_CHECK",
    "Intake",
    "IntakeResult",
    "MatchInfo",
    "SceneMatcher",
    "SitePhotoUse",
    "StageTimings",
    "Upload",
    "scene_check_status",
    "shares_site",
]

log = logging.getLogger(__name__)

SCENE_CHECK = "scene_check"  # the job kind
# A worker writes a snapshot of its index when it holds this many photos more than
# the last one (a restart then reads at most about this many rows from the database).
SNAPSHOT_EVERY = 100_000
# Same-scene candidates: photos of the county taken within this distance, then the
# most similar in content (cosine of the 1280-d pooled features), are checked
# geometrically, at most this many per upload. No embedding floor: off the request
# path the budget allows it, and no global descriptor is a safe pre-filter (issue 11:
# a floor at the different pairs' 95th percentile loses 27/70 same-scene pairs).
SCENE_MIN_SIMILARITY = -1.0
SCENE_MAX_METRES = 30.0
SCENE_MAX_NEAR = 8  # photos within SCENE_MAX_METRES verified, nearest first
# With the ORB matcher (no descriptor votes in the service): the most similar in
# content, at most this many. XFeat (the default) verifies the policy's
# ``scene_candidates`` (8) by votes: ~30 ms each, ~300 ms more in LighterGlue's band.
SCENE_MAX_CANDIDATES = 8
# A voted photo may belong to the probe's own or a linked household: more are asked
# for than verified.
_VOTE_OVERASK = 4
# Working grey images (~0.5 MB each) held for the scene check of stored uploads; past
# this, the check decodes the original again.
PENDING_MAX = 64
PENDING_STATUS = {
    "status": "pending",
    "message": "scene check pending: compared with other households' photos shortly",
    "message_zh": "同一房屋比对进行中：稍后与其他户的照片比对完毕",
}


def scene_check_status(checked: bool) -> dict[str, str] | None:
    """What an answer or a household record says about the photo's scene check."""
    return None if checked else dict(PENDING_STATUS)


class SceneMatcher(Protocol):
    """Local features + geometric verification (``store.scenes.OrbSceneMatcher``, or
    ``XFeatSceneMatcher`` when the policy says so)."""

    format_prefix: bytes  # what current features start with (the backfill's filter)

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
    # the household with its village, town and county, when the caller has just loaded
    # it (the request's scope check): not read again
    household: Household | None = None


@dataclass
class IntakeResult:
    household_code: str
    verdict: Verdict
    reasons: list[Reason]
    matches: list[MatchInfo] = field(default_factory=list)
    photo_id: int | None = None  # None when nothing was stored (practice)
    site_photo: dict[str, str] | None = None  # a linked household used its site's photo
    scene_checked: bool = True  # False: the same-scene check runs after the answer
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage, not in JSON

    @property
    def retake_required(self) -> bool:
        return self.verdict is Verdict.REJECT

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "photo_id": self.photo_id,
            "household_id": self.household_code,
            "verdict": self.verdict.value,
            "reasons": [r.to_json() for r in self.reasons],
            "matches": [m.to_json() for m in self.matches],
            "retake_required": self.retake_required,
            "scene_check": scene_check_status(self.scene_checked),
        }
        if self.site_photo is not None:
            out["site_photo"] = self.site_photo
        return out


@dataclass(frozen=True)
class _Probe:
    """The upload as the scene check sees it (from the request, or from its row)."""

    photo_id: int | None  # None: a practice upload (nothing stored)
    household: Household
    hashes: StoredHashes
    variants: tuple[bytes, ...]  # PDQ dihedral variants (only the hash after a restart)
    embedding: np.ndarray | None
    lat: float | None
    lon: float | None


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
        jobs: Jobs | None = None,
        scene_votes_bytes: int = DEFAULT_BUDGET_BYTES,
    ) -> None:
        self.db, self.blobs, self.policy, self.scene = db, blobs, policy, scene
        # GPS points and reduced embeddings live in an unlinked file there (page cache);
        # default: beside the staging folder (a local disk, also with an S3 store)
        spill = index_dir if index_dir is not None else blobs.tmp / "dupindex"
        self.index = DuplicateIndex(spill_dir=spill)
        self.snapshots = Snapshots(spill / "snapshots")  # PostgreSQL: a fast restart
        self.loaded_from = "database"  # or "snapshot": how the index was last loaded
        self._loaded = False  # the index holds the stored photos (load_index ran)
        self._snapshot_seen = 0  # the seen of the last snapshot this process wrote
        self.timings = StageTimings()
        self._backfill: threading.Thread | None = None
        self.seen = 0  # the highest photo id the index has considered (catch_up)
        self._following = threading.Event()  # set: the follow() thread stops
        # uploads in flight hold the embedded job threads back (``foreground``)
        self.foreground = Foreground()
        if jobs is None:
            jobs = ThreadJobs(self.job_handlers(), foreground=self.foreground)
        self.jobs: Jobs = jobs
        self._pending = _PendingImages(PENDING_MAX)
        # same-scene candidates by descriptor votes, per county (XFeat features)
        self.votes = CountyVoteIndexes(db, self._features_of_pending, scene_votes_bytes)
        self.features_stored = 0  # candidates' features stored by other photos' checks
        # called with (photo_id, county_id) when a scene check found matches (the audit)
        self.on_scene_matches: Callable[[int, int], None] | None = None

    def job_handlers(self) -> dict[str, Callable[[int], None]]:
        """What a job queue runs: ``{kind: handler(photo_id)}``."""
        return {SCENE_CHECK: self.run_scene_check}

    def rebuild_index(self, *, backfill: bool = True) -> int:
        """A serve process's start: every stored photo into the index (``load_index``);
        returns how many. Photos whose scene check did not run (the process died after
        the answer) are queued again. With ``backfill``, photos stored without scene
        features get them in a background thread."""
        self.load_index()
        with self.db.write_lock, self.db.session() as session:
            unchecked = list(
                session.scalars(select(Photo.id).where(~Photo.scene_checked).order_by(Photo.id))
            )
        for photo_id in unchecked:
            self.jobs.enqueue(SCENE_CHECK, photo_id)
        if backfill and self.scene is not None:
            self._backfill = threading.Thread(
                target=self.backfill_scene_features, name="scene-backfill", daemon=True
            )
            self._backfill.start()
        return len(self.index)

    def load_index(self) -> int:
        """Fill the index with every stored photo, once per process (a later call only
        catches up); returns how many it holds. ``rebuild_index`` (serve) and a job
        process (``photocheck worker``, or its first scene check) start the same way:
        on PostgreSQL the newest snapshot, then the photos above it, so the first
        scene check at 25 M does not read every row (``bench_scale.py index``)."""
        with self.db.write_lock:
            if not self._loaded:
                self._load_index()
                self._loaded = True
            with self.db.session() as session:
                self.catch_up(session)  # photos committed while it loaded
        return len(self.index)

    def _load_index(self) -> None:
        """On PostgreSQL: the newest matching snapshot, else a bulk read (then a
        snapshot is written in the background); the photos above either are read by
        ``catch_up``. SQLite (one process, a county): the rows, as always."""
        started = time.perf_counter()
        if self.db.dialect != "postgresql":
            with self.db.session() as session:
                entries = list(dup_entries(session))
            self.index.build(entries)
            self.seen = max((e.photo_id for e in entries), default=0)
            return
        seen = self.snapshots.load(self.index, self.db.engine)
        self.loaded_from = "snapshot"
        if seen is None:
            seen, self.loaded_from = bulk_load(self.index, self.db.engine), "database"
        elif self._behind(seen) > SNAPSHOT_EVERY:  # an old snapshot: the rest in bulk too
            seen = bulk_load(self.index, self.db.engine, after=seen)
        self.seen = self._snapshot_seen = seen
        log.info(
            "duplicate index: %d photos from the %s in %.1f s",
            len(self.index),
            self.loaded_from,
            time.perf_counter() - started,
        )
        if self.loaded_from == "database":
            self._snapshot_seen = -SNAPSHOT_EVERY  # follow() writes one soon

    def _behind(self, seen: int) -> int:
        with self.db.session() as session:
            return int(session.scalar(select(func.max(Photo.id))) or 0) - seen

    def save_snapshot(self) -> bool:
        """Write a snapshot of the index at ``seen`` (PostgreSQL; called by ``follow``
        every ``SNAPSHOT_EVERY`` photos); False when another process is writing one
        (the processes of one machine share the folder: one writes, the others skip)."""
        seen = self.seen  # the index holds every photo up to it (and maybe a few more)
        try:
            done = self.snapshots.save(self.index, seen, self.db.engine) is not None
        except OSError as exc:
            log.warning("duplicate index snapshot not written: %s", exc)
            return False
        self._snapshot_seen = seen  # written, or being written by another process
        return done

    def catch_up(self, session: Session, *, newest: int | None = None) -> int:
        """Add the photos other processes stored since the index last looked; returns
        how many. Call with ``db.write_lock`` held (it extends the index). Inside
        ``Database.write()`` on PostgreSQL the advisory lock makes this exact: every
        photo row is committed under that lock, so ids above ``seen`` are all there is.
        ``newest``: the highest photo id, when the caller has just read it."""
        if newest is None:
            newest = session.scalar(select(func.max(Photo.id))) or 0
        if newest <= self.seen:
            return 0  # nothing new (an index lookup; the entries query costs ~2 ms)
        entries = [e for e in dup_entries(session, after=self.seen) if e.photo_id not in self.index]
        if entries:
            self.index.add_many(entries)
            self.seen = max(self.seen, entries[-1].photo_id)
        return len(entries)

    def follow(self, interval_s: float = 0.5) -> threading.Thread:
        """A thread that catches up every ``interval_s`` (other workers' uploads are in
        the same-scene candidates within a second, not only at the next write)."""

        self._following.clear()

        def run() -> None:
            while not self._following.wait(interval_s):
                try:
                    with self.db.write_lock, self.db.session() as session:
                        self.catch_up(session)
                    if self.seen - self._snapshot_seen >= SNAPSHOT_EVERY:
                        self.save_snapshot()  # outside the lock: rows are append-only
                except SQLAlchemyError as exc:  # PostgreSQL restarting: try again later
                    log.warning("index catch-up failed: %s", exc)

        thread = threading.Thread(target=run, name="index-follow", daemon=True)
        thread.start()
        return thread

    def stop_following(self) -> None:
        self._following.set()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait for the scene checks queued in this process (tests, benchmarks)."""
        drain = getattr(self.jobs, "drain", None)
        return True if drain is None else bool(drain(timeout))

    def backfill_scene_features(self, batch: int = 32) -> int:
        """Make the features of stored photos that have none (stored before features were
        made at upload) or have them in an older format, decoding each original once;
        returns how many rows it filled.

        Runs off the request path (a thread started by ``rebuild_index``). A photo
        whose original cannot be decoded gets empty features, so it is tried once.
        Photos still waiting for their scene check are left to it.
        """
        if self.scene is None:
            return 0
        done, after = 0, 0
        while True:
            with self.db.session() as session:
                todo = session.execute(
                    select(Photo.id, Photo.sha256)
                    .where(
                        _needs_features(self.scene.format_prefix),
                        Photo.id > after,
                        Photo.scene_checked.is_(True),
                    )
                    .order_by(Photo.id)
                    .limit(batch)
                ).all()
            if not todo:
                return done
            made = {pid: self.scene.features_of_blob(sha) or b"" for pid, sha in todo}
            after = todo[-1][0]
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
        """Find copies, decide, store (unless practice), queue the scene check.
        ``on_commit`` runs inside the storing transaction (the idempotency record)."""
        report, clock = upload.report, self.timings.clock()
        lat, lon = _photo_point(report, upload.capture)
        fp = report.fingerprint
        # Before the lock, everything it does not protect: the household as registered,
        # its linked site, the whole index, and the copies among the photos and site
        # photos stored so far. Inside it only what other uploads change meanwhile
        # (the photos and site photos added since the marks, the household's current
        # photo) and the writes, in Core statements: each statement under the lock gives
        # the GIL away, and under load every hand-back waits its turn.
        mark = self.seen  # read first: every photo up to it is already in the index
        with self.db.session() as session:
            site_mark = _newest_site_photo(session)  # before the site photos are read
            household = upload.household or _load_household(session, upload.household_id)
            site = _linked_site(session, household)
            exact = _exact_hits(session, fp.sha256, fp.pixel_sha256)
            site_early = (  # no site photo stored at all (a county without drone
                # packages): no statement; the lock's re-read finds any added since
                _matching_site_photos(session, household.county_id, fp, self.policy.similarity)
                if site_mark
                else []
            )
        clock.lap("intake_read")
        practice_scene: list[MatchInfo] = []
        if upload.practice and self.scene is not None and report.photo is not None:
            # nothing is stored to check later: the practice answer waits for it
            probe = self._probe(None, household, upload, lat, lon)
            practice_scene = self._scene_matches(probe, grey=report.photo.grey)
            clock.lap("verification")

        # The whole index is asked before the lock; inside it, only the photos added
        # since ``mark`` (module docstring: why that is exact).
        early = self._pdq_hits(report)
        clock.lap("index_query")
        blob_path = None
        if not upload.practice and upload.blob is not None:
            blob_path = self.blobs.commit(upload.blob)  # durable before its row; no lock needed
            clock.lap("blob_write")
        row = _photo_row(upload, blob_path, export_name(household, _fmt(report)), lat, lon)
        with self.db.write() as session:
            clock.lap("write_lock")  # waiting for the other uploads' writes
            newest = _newest(session, household.id)
            # other processes' photos committed meanwhile
            self.catch_up(session, newest=newest.photo_id)
            if newest.photo_id > mark:
                exact += _exact_hits(session, fp.sha256, fp.pixel_sha256, after=mark)
            same = self._same_photo_matches(
                session, household, exact, early + self._pdq_hits(report, after=mark)
            )
            findings = duplicate_findings(same, practice_scene)
            site_use: SitePhotoUse | None = None
            if not same:  # a shared site's drone photo: only its linked households may use it
                site_matches = site_early
                if newest.site_photo_id > site_mark:
                    site_matches = site_early + _matching_site_photos(
                        session, household.county_id, fp, self.policy.similarity, after=site_mark
                    )
                site_findings, site_use = self._site_photo_outcome(household, site_matches)
                findings = site_findings or findings
            reasons = merge_findings(report.reasons, findings, self.policy)
            if site is not None:
                reasons = _judge_location_by_site(reasons, site, lat, lon, self.policy)
            check_later = not same and self.scene is not None and blob_path is not None
            result = IntakeResult(
                household.household_code,
                decide(reasons),
                reasons,
                matches=same or practice_scene,
                site_photo=site_use.to_json() if site_use else None,
                scene_checked=not check_later,
            )
            if blob_path is None:
                result.timings = clock.done()
                return result
            row.update(
                verdict=result.verdict.value,
                reasons=_plain([r.to_json() for r in result.reasons]),
                scene_checked=not check_later,
            )
            if not check_later:  # a copy needs no features (it stays out of the index)
                row["scene"] = b""
            photo_id = record_photo(
                session, household.id, row, [_match_row(m) for m in same], newest.current
            )
            result.photo_id = photo_id
            if on_commit is not None:
                on_commit(session, result)
            in_transaction = getattr(self.jobs, "photo_stored", None)
            if in_transaction is not None:  # the PostgreSQL queue: its jobs commit with the row
                in_transaction(session, photo_id, scene_check=check_later)
            clock.lap("db_write")
            session.commit()
            clock.lap("db_commit")
            if not same:  # a copy of another household's photo stays out (see dup_entries)
                self.index.add(_entry(photo_id, row, household, upload.embedding))
            self.seen = max(self.seen, photo_id)
        if check_later:
            variants = query_variants(report.fingerprint, self.policy.similarity)
            grey = report.photo.grey if report.photo is not None else None
            self._pending.put(photo_id, grey, variants)
            if in_transaction is None:
                self.jobs.enqueue(SCENE_CHECK, photo_id)
            elif (committed := getattr(self.jobs, "committed", None)) is not None:
                committed(SCENE_CHECK, photo_id)  # the queue's: checked here, decoded once
        result.timings = clock.done()
        return result

    def _pdq_hits(self, report: Report, after: int = 0) -> list[HashHit]:
        """Indexed photos (ids above ``after``) within the copy radius of the upload's
        PDQ variants (the engine's quality gate picks the query hashes)."""
        return self.index.same_photo(
            pdq_variants=query_variants(report.fingerprint, self.policy.similarity),
            max_distance=self.policy.similarity.same_photo_max_distance,
            after=after,
        )

    def _same_photo_matches(
        self,
        session: Session,
        household: Household,
        exact: list[HashHit],
        pdq: list[HashHit],
    ) -> list[MatchInfo]:
        """Exact bytes or pixels (``exact``: the database's indexed digests), then the
        PDQ hits (``pdq``: asked before the lock, plus the photos added since), nearest
        first."""
        hits = sorted({h.photo_id: h for h in exact}.values(), key=lambda h: h.photo_id)
        best: dict[int, HashHit] = {}
        for h in pdq:
            if h.photo_id not in best or h.distance < best[h.photo_id].distance:
                best[h.photo_id] = h
        known = {h.photo_id for h in hits}
        hits += sorted(
            (h for h in best.values() if h.photo_id not in known),
            key=lambda h: (h.distance, h.photo_id),
        )
        return _describe(session, household, hits)

    @staticmethod
    def _site_photo_outcome(
        household: Household, matches: list[SitePhotoMatch]
    ) -> tuple[list[Finding], SitePhotoUse | None]:
        """The site-photo rule (``rules.site_photo_outcome``) over the county's site
        photos that the engine calls the same photo (``sites._matching_site_photos``)."""
        hits = [
            SiteHit(
                m.photo.site.site_code, m.photo.site.name, m.photo.canonical_name, m.distance, m.via
            )
            for m in sorted(matches, key=lambda m: (m.distance, m.photo.id))
        ]
        return site_photo_outcome(household, household.category, hits)

    # -- the scene check, after the answer ---------------------------------------------

    def run_scene_check(self, photo_id: int) -> None:
        """The ``scene_check`` job: features, candidates, verification, then the record.

        Idempotent: a photo already checked (or gone) is left alone, so a job that runs
        twice (a queue's at-least-once) changes nothing the second time.
        """
        held = self._pending.peek(photo_id)  # dropped once the row holds its features
        # every earlier photo: a job process not started by `photocheck worker` loads
        # the index here (snapshot first); the follow() thread may be 0.5 s behind
        self.load_index()
        with self.db.session() as session:
            row = session.get(Photo, photo_id)
            if row is None or row.scene_checked:
                self._pending.take(photo_id)
                return
            household = _load_household(session, row.household_id)
            probe = _Probe(
                photo_id,
                household,
                _hashes_of(row),
                held.variants if held else _row_variants(row, self.policy),
                embedding_from_bytes(row.embedding) if row.embedding else None,
                row.gps_lat,
                row.gps_lon,
            )
            stored = row.scene
        own = stored if stored and self.scene and not self.scene.needs_features(stored) else None
        if own is None and self.scene is not None:
            own = self._pending.features(photo_id, self.scene.features)  # made once
            if own is None:
                own = self.scene.features_of_blob(probe.hashes.sha256) or b""
            # stored before the verification (~1 s): the checks other processes run
            # meanwhile have this photo among their candidates and take them from its row
            own = self._store_features(photo_id, own)
        found = self._scene_matches(probe, own)
        with self.db.write() as session:
            row = session.get(Photo, photo_id)
            if row is None or row.scene_checked:
                return
            if own is not None and self.scene is not None and self.scene.needs_features(row.scene):
                row.scene = own  # features another check stored first are kept (the same)
            if found:
                self._record_scene_matches(session, row, found)
            row.scene_checked = True
            session.commit()
        self._pending.take(photo_id)
        if found and self.on_scene_matches is not None:
            self.on_scene_matches(photo_id, probe.household.county_id)

    def _record_scene_matches(self, session: Session, row: Photo, found: list[MatchInfo]) -> None:
        """Match rows, the finding among the photo's reasons, the verdict decided again."""
        for match in found:
            link = _match_row(match)
            link.photo_id = row.id
            session.add(link)
        same = [m for m in found if m.relation == SAME_PHOTO]
        scene = [m for m in found if m.relation == SAME_SCENE]
        reasons = [reason_from_json(r) for r in row.reasons or []]
        merged = merge_findings(reasons, duplicate_findings(same, scene), self.policy)
        row.reasons = _plain([r.to_json() for r in merged])
        row.verdict = decide(merged).value

    def _probe(
        self,
        photo_id: int | None,
        household: Household,
        upload: Upload,
        lat: float | None,
        lon: float | None,
    ) -> _Probe:
        fp = upload.report.fingerprint
        return _Probe(
            photo_id,
            household,
            StoredHashes(fp.sha256, fp.pixel_sha256, fp.pdq, fp.pdq_quality),
            query_variants(fp, self.policy.similarity),
            np.asarray(upload.embedding, np.float32) if upload.embedding is not None else None,
            lat,
            lon,
        )

    def _candidates(
        self, probe: _Probe, own: bytes | None
    ) -> list[tuple[int, int, tuple[int, int] | None, dict]]:
        """(photo id, household id, PDQ (bits, variant) or None, extra evidence) of the
        photos to verify, earlier photos only: the PDQ verify tier first (a copy or
        not), then the photos taken near, then the most voted (``extra["via"]`` says
        which; ``_within_budgets`` cuts each to its budget)."""
        sim = self.policy.similarity
        out: list[tuple[int, int, tuple[int, int] | None, dict]] = []
        seen: set[int] = set()
        earlier = (lambda pid: pid < probe.photo_id) if probe.photo_id else (lambda pid: True)
        for hit in self.index.same_photo(
            pdq_variants=probe.variants, max_distance=sim.same_photo_verify_max_distance
        ):
            if hit.distance > sim.same_photo_max_distance and earlier(hit.photo_id):
                owner = self.index.household_of(hit.photo_id)
                if owner is not None:
                    out.append((hit.photo_id, owner, None, {"via": "pdq"}))
                    seen.add(hit.photo_id)
        mine = _xfeat(own)
        # the content embedding only ranks for a matcher without votes (ORB)
        embedding = probe.embedding if mine is None else None
        if embedding is not None or probe.lat is not None:
            for cand in self.index.scene_candidates(
                county_id=probe.household.county_id,
                exclude_household=probe.household.id,
                embedding=embedding,
                lat=probe.lat,
                lon=probe.lon,
                min_similarity=SCENE_MIN_SIMILARITY,
                max_metres=SCENE_MAX_METRES,
                limit=SCENE_MAX_CANDIDATES * _VOTE_OVERASK,
            ):
                if cand.photo_id not in seen and earlier(cand.photo_id):
                    near = cand.metres is not None and cand.metres <= SCENE_MAX_METRES
                    extra = {"via": "gps" if near else "embedding", "metres": cand.metres}
                    if embedding is not None:
                        extra["embedding_similarity"] = cand.similarity
                    out.append((cand.photo_id, cand.household_id, None, extra))
                    seen.add(cand.photo_id)
        if mine is not None:
            own_household = probe.household.id
            for voted in self.votes.candidates(
                probe.household.county_id,
                mine,
                sim.scene_candidates * _VOTE_OVERASK,
                keep=lambda pid, hid: hid != own_household and earlier(pid) and pid not in seen,
                below=probe.photo_id,
            ):
                extra = {"via": "votes", "votes": voted.votes}
                out.append((voted.photo_id, voted.household_id, None, extra))
        return out

    def _scene_matches(
        self, probe: _Probe, own: bytes | None = None, grey: np.ndarray | None = None
    ) -> list[MatchInfo]:
        """The candidates the engine calls the same photo or scene, that count against
        the probe's household (at most ``SCENE_MAX_CANDIDATES`` verified). ``own``: the
        probe's features, else made from ``grey`` when a candidate needs them."""
        if self.scene is None:
            return []
        if own is None and grey is not None:
            own = self.scene.features(grey)
        candidates = self._candidates(probe, own)
        if not candidates:
            return []
        with self.db.session() as session:
            others = _households(session, {c[1] for c in candidates})
            eligible = _within_budgets(
                [
                    c
                    for c in candidates
                    if c[1] in others and counts_against(probe.household, others[c[1]])
                ],
                self.policy.similarity.scene_candidates,
            )
            rows = {
                r.id: r
                for r in session.execute(
                    select(
                        Photo.id,
                        Photo.sha256,
                        Photo.pixel_sha256,
                        Photo.pdq,
                        Photo.pdq_quality,
                        Photo.scene,
                    ).where(Photo.id.in_([c[0] for c in eligible]))
                )
            }
        sim = self.policy.similarity
        out: list[MatchInfo] = []
        for photo_id, household_id, _, extra in eligible:
            row = rows.get(photo_id)
            if row is None:
                continue
            # b"": an original that could not be decoded (no features, not tried again)
            theirs = row.scene if row.scene is not None else self._features_of_pending(photo_id)
            theirs_hashes = StoredHashes(
                row.sha256,
                row.pixel_sha256,
                bytes.fromhex(row.pdq) if row.pdq else None,
                row.pdq_quality,
            )
            mine_hashes = StoredHashes(*_fields(probe.hashes), pdq_dihedral=probe.variants)

            def verify(theirs: bytes | None = theirs) -> dict[str, Any] | None:
                if not own or not theirs or self.scene is None:
                    return None
                return self.scene.verify(own, theirs)

            bits = pdq_distance(mine_hashes, theirs_hashes, sim)
            decision = decide_pair(mine_hashes, theirs_hashes, verify, sim, bits)
            if decision is None:
                continue
            thresholds = _thresholds(self.policy, decision.evidence.get("stage"))
            evidence = {**decision.evidence, **extra, "thresholds": thresholds}
            distance = None if decision.distance is None else float(decision.distance)
            out.append(_info(decision.relation, photo_id, others[household_id], distance, evidence))
        out.sort(key=lambda m: m.relation != SAME_PHOTO)
        return out

    def _features_of_pending(self, photo_id: int) -> bytes | None:
        """A candidate stored moments ago whose own check has not run: its features from
        the image it left here, or from its original, stored on its row at once, so its
        own check and every other check (in any process) reuse them instead of making
        them again (a job backlog made a queued photo's features once per check that
        had it as a candidate)."""
        if self.scene is None:
            return None
        made = self._pending.features(photo_id, self.scene.features)  # once, shared with its job
        if made is None:
            with self.db.session() as session:
                sha = session.scalar(select(Photo.sha256).where(Photo.id == photo_id))
            made = self.scene.features_of_blob(sha) if sha else None
        return None if made is None else self._store_features(photo_id, made)

    def _store_features(self, photo_id: int, made: bytes) -> bytes:
        """Store a photo's features where its own check would (``photos.scene``) unless
        a row already has them: whoever stores first wins, and the first one's are
        returned (the same photo's features, made elsewhere a moment earlier)."""
        assert self.scene is not None
        with self.db.write() as session:
            stored = session.scalar(select(Photo.scene).where(Photo.id == photo_id))
            if stored is not None and not self.scene.needs_features(stored):
                return stored
            session.execute(update(Photo).where(Photo.id == photo_id).values(scene=made))
        self.features_stored += 1
        return made


def _xfeat(own: bytes | None) -> SceneFeatures | None:
    """The probe's features as XFeat's (what the vote index holds), else None."""
    if not own or not is_current_format(own):
        return None
    try:
        return SceneFeatures.from_bytes(own)
    except ValueError:
        return None


def _within_budgets(
    candidates: list[tuple[int, int, tuple[int, int] | None, dict]], voted: int
) -> list[tuple[int, int, tuple[int, int] | None, dict]]:
    """Every PDQ-tier candidate, the SCENE_MAX_NEAR nearest, the ``voted`` most voted
    (or SCENE_MAX_CANDIDATES by content similarity, ORB), in that order."""
    budget = {"pdq": len(candidates), "gps": SCENE_MAX_NEAR, "votes": voted}
    budget["embedding"] = SCENE_MAX_CANDIDATES
    used: dict[str, int] = defaultdict(int)
    out = []
    for c in candidates:
        via = c[3].get("via", "pdq")
        if used[via] < budget[via]:
            used[via] += 1
            out.append(c)
    return out


def _thresholds(policy: Policy, stage: str | None = None) -> dict[str, Any]:
    """The thresholds the matcher in use judged a pair by (XFeat: those of the stage
    that decided it, ``xfeat_scene.STAGE_NN`` or LighterGlue's)."""
    sim = policy.similarity
    if sim.scene_matcher == "orb":
        scene: dict[str, Any] = {
            "scene_min_inliers": sim.scene_min_inliers,
            "scene_min_inlier_ratio": sim.scene_min_inlier_ratio,
        }
    else:
        nn = stage == STAGE_NN
        scene = {
            "scene_matcher": sim.scene_matcher,
            "scene_min_inliers": sim.xfeat_nn_same_inliers if nn else sim.xfeat_min_inliers,
            "scene_min_inlier_ratio": sim.xfeat_min_inlier_ratio,
        }
    return {
        **scene,
        "same_photo_max_distance": sim.same_photo_max_distance,
        "same_photo_verify_max_distance": sim.same_photo_verify_max_distance,
        "same_photo_max_corner_error": sim.same_photo_max_corner_error,
    }


def _fields(h: StoredHashes) -> tuple[str, str | None, bytes | None, int | None]:
    return h.sha256, h.pixel_sha256, h.pdq, h.pdq_quality


def _hashes_of(row: Photo) -> StoredHashes:
    return StoredHashes(
        row.sha256, row.pixel_sha256, bytes.fromhex(row.pdq) if row.pdq else None, row.pdq_quality
    )


def _row_variants(row: Photo, policy: Policy) -> tuple[bytes, ...]:
    """After a restart the dihedral variants are gone: the stored hash alone."""
    return query_variants(_hashes_of(row), policy.similarity)


@dataclass
class _PendingImage:
    grey: np.ndarray | None
    variants: tuple[bytes, ...]
    features: bytes | None = None  # made from ``grey`` once (then ``grey`` is let go)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _PendingImages:
    """Working images of stored uploads waiting for their scene check (bounded: past
    ``limit`` the oldest are dropped and their check decodes the original)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._items: OrderedDict[int, _PendingImage] = OrderedDict()

    def put(self, photo_id: int, grey: np.ndarray | None, variants: tuple[bytes, ...]) -> None:
        copy = None if grey is None else np.array(grey, copy=True)
        with self._lock:
            self._items[photo_id] = _PendingImage(copy, variants)
            while len(self._items) > self._limit:
                self._items.popitem(last=False)

    def peek(self, photo_id: int) -> _PendingImage | None:
        with self._lock:
            return self._items.get(photo_id)

    def features(self, photo_id: int, make: Callable[[np.ndarray], bytes]) -> bytes | None:
        """The photo's scene features, made from its image at the first call (its own
        check, or a later upload's check that has it as a candidate); None if not held."""
        item = self.peek(photo_id)
        if item is None:
            return None
        with item.lock:
            if item.features is None and item.grey is not None:
                item.features, item.grey = make(item.grey), None
            return item.features

    def take(self, photo_id: int) -> _PendingImage | None:
        with self._lock:
            return self._items.pop(photo_id, None)


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


# The request path's statements, built once with bound parameters: building a
# statement and its cache key costs more Python than running it (~0.3-1 ms each, per
# upload, on the threads that share the GIL with the photo checks).
def _exact_statement(pixels: bool) -> Any:
    copies = select(PhotoMatch.id).where(
        PhotoMatch.photo_id == Photo.id, PhotoMatch.relation == "same_photo"
    )
    same = Photo.sha256 == bindparam("sha")
    if pixels:
        same = or_(same, Photo.pixel_sha256 == bindparam("pixels"))
    return (
        select(Photo.id, Photo.sha256)
        .where(same, ~copies.exists(), Photo.id > bindparam("after"))
        .order_by(Photo.id)
    )


_EXACT = {pixels: _exact_statement(pixels) for pixels in (False, True)}
_NEWEST_SITE_PHOTO = select(func.max(SitePhoto.id))


def _exact_hits(
    session: Session, sha256: str, pixel_sha256: str | None, *, after: int = 0
) -> list[HashHit]:
    """Stored photos (ids above ``after``) with the same bytes or pixels (indexed
    columns), except copies already found to be another household's photo (as the
    index leaves them out)."""
    params = {"sha": sha256, "pixels": pixel_sha256, "after": after}
    rows: list[Any] = list(session.connection().execute(_EXACT[bool(pixel_sha256)], params))
    return [HashHit(pid, 0, "sha256" if sha == sha256 else "pixel_sha256") for pid, sha in rows]


def _newest_site_photo(session: Session) -> int:
    return session.connection().execute(_NEWEST_SITE_PHOTO).scalar() or 0


@dataclass(frozen=True)
class _Newest:
    photo_id: int  # the highest photo id
    site_photo_id: int  # the highest site-photo id
    current: tuple[int, str] | None  # the household's current photo: (id, verdict)


def _newest_statement() -> Any:
    current = select(Household.current_photo_id).where(Household.id == bindparam("household"))
    return select(
        select(func.max(Photo.id)).scalar_subquery(),
        select(func.max(SitePhoto.id)).scalar_subquery(),
        current.scalar_subquery(),
        select(Photo.verdict).where(Photo.id == current.scalar_subquery()).scalar_subquery(),
    )


_NEWEST = _newest_statement()


def _newest(session: Session, household_id: int) -> _Newest:
    """What the lock must read fresh, in one statement: the highest photo and site-photo
    ids and the household's current photo."""
    row = session.connection().execute(_NEWEST, {"household": household_id}).one()
    return _Newest(row[0] or 0, row[1] or 0, (row[2], row[3]) if row[2] is not None else None)


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
        if other is None or not counts_against(household, other):
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


def _photo_row(
    upload: Upload, blob_path: str | None, name: str, lat: float | None, lon: float | None
) -> dict[str, Any]:
    """The photo's column values that do not depend on the duplicate search (made
    before the lock; ``submit`` adds the verdict inside it)."""
    report = upload.report
    fp = report.fingerprint
    embedding = upload.embedding
    return {
        "sha256": fp.sha256,
        "size": upload.blob.size if upload.blob is not None else 0,
        "format": _fmt(report),
        "blob_path": blob_path,
        "export_name": name,
        "metrics": _plain(report.metrics),
        "exif": _plain(report.metadata.to_json()) if report.metadata else None,
        "capture": _plain(upload.capture),
        "pdq": fp.pdq.hex() if fp.pdq else None,
        "pdq_quality": fp.pdq_quality,
        "phash": f"{fp.phash:016x}" if fp.phash is not None else None,
        "pixel_sha256": fp.pixel_sha256,
        "embedding": embedding_to_bytes(embedding) if embedding is not None else None,
        "gps_lat": lat,
        "gps_lon": lon,
        "uploaded_by": upload.user_id,
        "policy_version": report.policy_version,
        "model_version": report.model_version,
    }


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


def _entry(
    photo_id: int,
    row: dict[str, Any],
    household: Household,
    embedding: Sequence[float] | None,
) -> DupEntry:
    return DupEntry(
        photo_id=photo_id,
        household_id=household.id,
        county_id=household.county_id,
        site_code=household.site_code,
        pdq=bytes.fromhex(row["pdq"]) if row["pdq"] else None,
        embedding=np.asarray(embedding, dtype=np.float32) if embedding is not None else None,
        lat=row["gps_lat"],
        lon=row["gps_lon"],
        sha256=row["sha256"],
        pixel_sha256=row["pixel_sha256"],
    )


def _needs_features(prefix: bytes) -> Any:
    """Rows whose scene features are missing or in another format (an older one, or
    another matcher's; empty bytes mark an original that could not be decoded: tried
    once, not again)."""
    return or_(
        Photo.scene.is_(None),
        (func.length(Photo.scene) > 0) & (func.substr(Photo.scene, 1, len(prefix)) != prefix),
    )
