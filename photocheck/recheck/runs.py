"""The county's look-back re-check (回头看): every stored photo of a county (or a town)
checked again under the current policy and model, as background jobs.

A run is a ``recheck_runs`` row and one ``photo_verdicts`` row per photo in its scope,
made at the start in one ``INSERT … SELECT`` (so ``total`` is fixed and uploads after
the start are not in it: they are checked under the current policy anyway). The work
is cut into batches of ``batch_size`` records; a job's key is the id of its batch's
first record, which names the run and the batch, so the ``Jobs`` interface (threads in
the embedded default, the PostgreSQL queue with any number of workers) carries it
unchanged. Delivery is at least once, so a batch only fills records still empty.

- **pause / resume** is the run's state, read by every batch before it starts: a paused
  run's jobs end at once; resuming queues again the batches with empty records.
- **a failing photo** (the object store down, the original unreadable): its read and
  check are tried again after each of ``retry_delays``; still failing, its record is
  filled with the verdict ``failed`` and a bilingual ``RECHECK_FAILED`` reason, so
  the run still finishes (never stuck at 99 %), the report lists the photo, and
  confirming keeps its verdict (a later run checks it again).
- **restart**: the start-up (``resume_interrupted``) queues the batches of every
  running run again (the threads' queue is in memory; the PostgreSQL queue keeps its
  jobs and deduplicates them).
- **cost**: each original is read and decoded once (``check_photo`` shares the pixels
  with every check); a batch's photos are read in one query and its verdicts written
  in one statement, so the database costs little per photo.

What a record holds: the verdict and reasons of the photo checks under the new policy
and model, plus the photo's stored duplicate findings (DUPLICATE_PHOTO, SAME_SCENE;
re-worded and weighed by the new policy's severities) and the shared-site place rule.
What it does not re-evaluate: the duplicate and same-scene search itself (the matches
found at upload and by the scene check are kept as they are), and drone photos of sites.

Nothing is overwritten until the county confirms a finished run: then each photo whose
effective verdict is still the one the run compared with switches to the run's
(``photos.verdict``, ``reasons`` and versions; the one replaced stays in the record's
``old_*``), and retake lists and progress follow.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, literal, select, update
from sqlalchemy.orm import Session, joinedload

from ..errors import BlobNotFound, RecheckRefused
from ..model import ContentModel
from ..pipeline import check_photo
from ..policy import Policy
from ..reasons import ReasonCode
from ..similarity.rules import merge_findings, reason_from_json
from ..store.blobs import BlobStore
from ..store.context import photo_context
from ..store.db import Database
from ..store.intake import _judge_location_by_site, _linked_site, _plain
from ..store.jobs import Jobs, ThreadJobs
from ..store.models import Household, Photo, Town, User, Village, utcnow
from ..verdict import Finding, Reason, decide
from .tables import PhotoVerdict, RecheckRun, RunState

__all__ = ["RECHECK", "Recheck", "RunView"]

log = logging.getLogger(__name__)

RECHECK = "recheck"  # the job kind; its key: the id of the batch's first record
BATCH_SIZE = 32
# the stored findings of the duplicate engine, kept (the search is not repeated)
CARRIED = frozenset({ReasonCode.DUPLICATE_PHOTO, ReasonCode.SAME_SCENE})
ACTIVE = (RunState.RUNNING.value, RunState.PAUSED.value)
FAILED = "failed"  # a record's verdict when its photo could not be checked
RETRY_DELAYS = (0.5, 2.0, 5.0)  # seconds before each new try of a failing photo


@dataclass(frozen=True)
class RunView:
    """A run as the page and the API show it (progress, time left, who and when)."""

    run: RecheckRun
    done: int
    town: str | None
    started_by: str
    confirmed_by: str | None
    paused_by: str | None
    changes: dict[str, int]  # "accept->reject": households, current photos only
    failed: int = 0  # photos that could not be checked (verdict ``failed``)

    @property
    def seconds_running(self) -> float:
        extra = 0.0
        if self.run.state == RunState.RUNNING and self.run.resumed_at is not None:
            extra = (utcnow() - self.run.resumed_at).total_seconds()
        return self.run.active_seconds + max(0.0, extra)

    @property
    def eta_seconds(self) -> float | None:
        """Time left from the rate so far (None until a batch is done)."""
        left = self.run.total - self.done
        if left <= 0:
            return 0.0
        secs = self.seconds_running
        return None if self.done == 0 or secs <= 0 else left * secs / self.done

    def to_json(self) -> dict[str, Any]:
        r, secs, eta = self.run, self.seconds_running, self.eta_seconds
        return {
            "run_id": r.id,
            "state": r.state,
            "town": self.town,
            "policy_version": r.policy_version,
            "model_version": r.model_version,
            "total": r.total,
            "done": self.done,
            "percent": round(100.0 * self.done / r.total, 1) if r.total else 100.0,
            "seconds_running": round(secs, 1),
            "photos_per_s": round(self.done / secs, 2) if secs > 0 and self.done else None,
            "eta_seconds": None if eta is None else round(eta, 1),
            "started_by": self.started_by,
            "started_at": r.started_at.isoformat(),
            "paused_by": self.paused_by,
            "finished_at": r.finished_at.isoformat() if r.finished_at else None,
            "confirmed_by": self.confirmed_by,
            "confirmed_at": r.confirmed_at.isoformat() if r.confirmed_at else None,
            "changes": self.changes,
            "changed_households": sum(self.changes.values()),
            "failed": self.failed,
            "applied": r.applied,
            "skipped": r.skipped,
        }


@dataclass(frozen=True)
class _Checked:
    record_id: int
    verdict: str
    reasons: list[Any]
    model_version: str
    old: Photo


class Recheck:
    """Starts, pauses, resumes and confirms runs, and runs their batches (one per
    process, shared by the request threads and the job handlers)."""

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        policy: Policy,
        model: ContentModel,
        *,
        radius_m: float | None = None,
        jobs: Jobs | None = None,
        batch_size: int = BATCH_SIZE,
        workers: int = 2,
        retry_delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        self.db, self.blobs, self.policy, self.model = db, blobs, policy, model
        self.radius_m, self.batch_size, self.workers = radius_m, batch_size, workers
        self.retry_delays = tuple(retry_delays)
        self.jobs: Jobs = jobs if jobs is not None else ThreadJobs(self.job_handlers())
        self._pool: ThreadPoolExecutor | None = None
        # called with the county id once a run is confirmed (the audit's findings)
        self.on_confirmed: Callable[[int], object] | None = None

    def job_handlers(self) -> dict[str, Callable[[int], None]]:
        return {RECHECK: self.run_batch}

    def drain(self, timeout: float | None = None) -> bool:
        """Wait for the batches queued in this process (tests, benchmarks)."""
        drain = getattr(self.jobs, "drain", None)
        return True if drain is None else bool(drain(timeout))

    # -- the county's actions ----------------------------------------------------------

    def start(self, county_id: int, user_id: int, town_id: int | None = None) -> RecheckRun:
        """A new run over the county's (or the town's) stored photos.

        :exception RecheckRefused: RECHECK_RUNNING while another run is running or paused.
        """
        with self.db.write() as session:
            busy = session.scalar(
                select(RecheckRun).where(
                    RecheckRun.county_id == county_id, RecheckRun.state.in_(ACTIVE)
                )
            )
            if busy is not None:
                said = "paused" if busy.state == RunState.PAUSED else "running"
                zh = "已暂停" if busy.state == RunState.PAUSED else "正在进行"
                raise RecheckRefused(
                    "RECHECK_RUNNING",
                    f"re-check {busy.id} is still {said}; resume it and let it finish "
                    "before starting another",
                    f"回头看复核 {busy.id} {zh}，请等它完成后再发起新的复核",
                )
            session.execute(  # a finished run nobody confirmed can no longer be
                update(RecheckRun)
                .where(RecheckRun.county_id == county_id, RecheckRun.state == RunState.DONE)
                .values(state=RunState.SUPERSEDED.value)
            )
            now = utcnow()
            run = RecheckRun(
                county_id=county_id,
                town_id=town_id,
                state=RunState.RUNNING.value,
                policy_version=self.policy.version,
                model_version=self.model.version,
                total=0,
                batch_size=self.batch_size,
                started_by=user_id,
                started_at=now,
                active_seconds=0.0,
                resumed_at=now,
            )
            session.add(run)
            session.flush()
            scope = (
                select(Photo.id, Photo.household_id, Photo.is_current, literal(run.id))
                .join(Household, Household.id == Photo.household_id)
                .join(Village, Village.id == Household.village_id)
                .where(Household.county_id == county_id)
                .order_by(Photo.id)
            )
            if town_id is not None:
                scope = scope.where(Village.town_id == town_id)
            columns = ["photo_id", "household_id", "is_current", "run_id"]
            session.execute(insert(PhotoVerdict).from_select(columns, scope))
            run.total = int(
                session.scalar(select(func.count()).where(PhotoVerdict.run_id == run.id)) or 0
            )
            if run.total == 0:
                self._finish(run, now)
        self._enqueue(self._pending_batches(run.id))
        return run

    def pause(self, run_id: int, county_id: int, user_id: int) -> RecheckRun:
        with self.db.write() as session:
            run = _run(session, run_id, county_id)
            _require(run, RunState.RUNNING, "pause", "暂停")
            now = utcnow()
            run.active_seconds += _since(run.resumed_at, now)
            run.state, run.resumed_at, run.paused_by = RunState.PAUSED.value, None, user_id
        return run

    def resume(self, run_id: int, county_id: int, user_id: int) -> RecheckRun:
        with self.db.write() as session:
            run = _run(session, run_id, county_id)
            _require(run, RunState.PAUSED, "resume", "继续")
            run.state, run.resumed_at, run.paused_by = RunState.RUNNING.value, utcnow(), None
        self._enqueue(self._pending_batches(run_id))
        return run

    def confirm(self, run_id: int, county_id: int, user_id: int) -> RecheckRun:
        """Make a finished run's verdicts the effective ones, in one transaction.

        A photo whose verdict changed after the run checked it (a scene check found a
        match meanwhile) keeps it: counted in ``skipped``, shown in the report."""
        with self.db.write() as session:
            run = _run(session, run_id, county_id)
            _require(run, RunState.DONE, "confirm", "确认")
            applied = skipped = 0
            changes: list[dict[str, Any]] = []
            rows = session.execute(
                select(PhotoVerdict, Photo)
                .join(Photo, Photo.id == PhotoVerdict.photo_id)
                .where(
                    PhotoVerdict.run_id == run.id,
                    PhotoVerdict.verdict.is_not(None),
                    PhotoVerdict.verdict != FAILED,  # not checked: its verdict stays
                )
            )
            for record, photo in rows:
                if photo.verdict != record.old_verdict or photo.reasons != record.old_reasons:
                    skipped += 1
                    continue
                applied += 1
                changes.append(
                    {
                        "pid": photo.id,
                        "verdict": record.verdict,
                        "reasons": record.reasons,
                        "policy_version": record.policy_version,
                        "model_version": record.model_version,
                    }
                )
            if changes:
                table = cast(Table, Photo.__table__)
                session.connection().execute(
                    update(table)
                    .where(table.c.id == bindparam("pid"))
                    .values(
                        verdict=bindparam("verdict"),
                        reasons=bindparam("reasons"),
                        policy_version=bindparam("policy_version"),
                        model_version=bindparam("model_version"),
                    ),
                    changes,
                )
            run.state, run.confirmed_by, run.confirmed_at = (
                RunState.CONFIRMED.value,
                user_id,
                utcnow(),
            )
            run.applied, run.skipped = applied, skipped
        if self.on_confirmed is not None:
            self.on_confirmed(county_id)
        return run

    def resume_interrupted(self) -> int:
        """At start-up: queue again the unfinished batches of every running run (a
        restart lost the threads' queue; the PostgreSQL queue skips what it holds)."""
        with self.db.session() as session:
            runs = list(
                session.scalars(
                    select(RecheckRun.id).where(RecheckRun.state == RunState.RUNNING.value)
                )
            )
        queued = 0
        for run_id in runs:
            batches = self._pending_batches(run_id)
            self._enqueue(batches)
            queued += len(batches)
        return queued

    # -- reading -----------------------------------------------------------------------

    def view(self, session: Session, run: RecheckRun) -> RunView:
        done = session.scalar(
            select(func.count()).where(
                PhotoVerdict.run_id == run.id, PhotoVerdict.verdict.is_not(None)
            )
        )
        names = dict(
            session.execute(
                select(User.id, User.username).where(
                    User.id.in_([i for i in (run.started_by, run.confirmed_by, run.paused_by) if i])
                )
            ).all()
        )
        town = session.get(Town, run.town_id) if run.town_id else None
        changes: dict[str, int] = {}
        for old, new, n in session.execute(
            select(PhotoVerdict.old_verdict, PhotoVerdict.verdict, func.count())
            .where(
                PhotoVerdict.run_id == run.id,
                PhotoVerdict.is_current.is_(True),
                PhotoVerdict.verdict.is_not(None),
                PhotoVerdict.verdict != FAILED,
                PhotoVerdict.verdict != PhotoVerdict.old_verdict,
            )
            .group_by(PhotoVerdict.old_verdict, PhotoVerdict.verdict)
        ):
            changes[f"{old}->{new}"] = int(n)
        failed = session.scalar(
            select(func.count()).where(
                PhotoVerdict.run_id == run.id, PhotoVerdict.verdict == FAILED
            )
        )
        return RunView(
            run,
            int(done or 0),
            town.name if town else None,
            names.get(run.started_by, "?"),
            names.get(run.confirmed_by) if run.confirmed_by else None,
            names.get(run.paused_by) if run.paused_by else None,
            dict(sorted(changes.items())),
            int(failed or 0),
        )

    # -- the job -----------------------------------------------------------------------

    def run_batch(self, key: int) -> None:
        """The ``recheck`` job: the empty records of one batch, checked and written.

        Idempotent: records already filled are left alone, and a run that is not
        running (paused, confirmed, superseded) is not worked on."""
        with self.db.session() as session:
            first = session.get(PhotoVerdict, key)
            if first is None:
                return
            run = session.get(RecheckRun, first.run_id)
            if run is None or run.state != RunState.RUNNING:
                return
            todo = [
                (record_id, photo)
                for record_id, verdict, photo in session.execute(
                    select(PhotoVerdict.id, PhotoVerdict.verdict, Photo)
                    .join(Photo, Photo.id == PhotoVerdict.photo_id)
                    .options(
                        joinedload(Photo.household)
                        .joinedload(Household.village)
                        .joinedload(Village.town)
                        .joinedload(Town.county)
                    )
                    .where(PhotoVerdict.run_id == run.id, PhotoVerdict.id >= key)
                    .order_by(PhotoVerdict.id)
                    .limit(run.batch_size)
                )
                if verdict is None
            ]
            sites = {
                h.id: _linked_site(session, h)
                for h in {p.household for _, p in todo}
                if h.site_code
            }
            run_id = run.id
        checked = list(self._pool_map(lambda item: self._check(item, sites), todo))
        self._save(run_id, checked)

    def _check(self, item: tuple[int, Photo], sites: dict[int, Any]) -> _Checked:
        """One photo, tried again after each of ``retry_delays`` while it fails; then a
        ``failed`` record, so the batch (and the run) still finishes."""
        record_id, photo = item
        for delay in (*self.retry_delays, None):
            try:
                return self._check_once(record_id, photo, sites)
            except Exception as exc:  # the store down, the original unreadable, a bug
                if delay is None:
                    log.exception("re-check: photo %d failed, given up", photo.id)
                    return _failed(record_id, photo, exc)
                log.warning("re-check: photo %d failed (%s); again in %.1f s", photo.id, exc, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _check_once(self, record_id: int, photo: Photo, sites: dict[int, Any]) -> _Checked:
        """One photo: its original decoded once, every check under the new policy, the
        stored duplicate findings carried over, the site rule applied again."""
        household = photo.household
        try:
            data = self.blobs.read(photo.blob_path)
        except BlobNotFound:  # the original is gone: shown as UNREADABLE, for the county
            log.error("re-check: the original of photo %d is missing", photo.id)
            data = b""
        context = photo_context(household, photo.capture, self.radius_m)
        report = check_photo(
            data, policy=self.policy, model=self.model, context=context, sha256=photo.sha256
        )
        reasons = merge_findings(report.reasons, _carried(photo.reasons or []), self.policy)
        site = sites.get(household.id)
        if site is not None:
            reasons = _judge_location_by_site(
                reasons, site, photo.gps_lat, photo.gps_lon, self.policy
            )
        return _Checked(
            record_id,
            decide(reasons).value,
            _plain([r.to_json() for r in reasons]),
            report.model_version,
            photo,
        )

    def _save(self, run_id: int, checked: Sequence[_Checked]) -> None:
        """The batch's verdicts in one statement; the run is done with its last record."""
        now = utcnow()
        with self.db.write() as session:
            if checked:
                table = cast(Table, PhotoVerdict.__table__)
                session.connection().execute(
                    update(table)
                    .where(table.c.id == bindparam("rid"), table.c.verdict.is_(None))
                    .values(
                        verdict=bindparam("verdict"),
                        reasons=bindparam("reasons"),
                        policy_version=bindparam("policy_version"),
                        model_version=bindparam("model_version"),
                        checked_at=bindparam("checked_at"),
                        old_verdict=bindparam("old_verdict"),
                        old_reasons=bindparam("old_reasons"),
                        old_policy_version=bindparam("old_policy_version"),
                        old_model_version=bindparam("old_model_version"),
                    ),
                    [_values(c, self.policy.version, now) for c in checked],
                )
            left = session.scalar(
                select(func.count()).where(
                    PhotoVerdict.run_id == run_id, PhotoVerdict.verdict.is_(None)
                )
            )
            run = session.get(RecheckRun, run_id)
            if not left and run is not None and run.state == RunState.RUNNING:
                self._finish(run, now)

    def _pool_map(
        self, fn: Callable[[tuple[int, Photo]], _Checked], items: list[tuple[int, Photo]]
    ) -> Iterable[_Checked]:
        if self.workers <= 1 or len(items) <= 1:
            return map(fn, items)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="recheck")
        return self._pool.map(fn, items)

    def _finish(self, run: RecheckRun, now: dt.datetime) -> None:
        run.active_seconds += _since(run.resumed_at, now)
        run.state, run.resumed_at, run.finished_at = RunState.DONE.value, None, now

    def _pending_batches(self, run_id: int) -> list[int]:
        """The first record id of every batch that still has an empty record."""
        with self.db.session() as session:
            run = session.get(RecheckRun, run_id)
            if run is None:
                return []
            rows = session.execute(
                select(PhotoVerdict.id, PhotoVerdict.verdict.is_(None))
                .where(PhotoVerdict.run_id == run_id)
                .order_by(PhotoVerdict.id)
            ).all()
        size = run.batch_size
        return [
            rows[i][0] for i in range(0, len(rows), size) if any(r[1] for r in rows[i : i + size])
        ]

    def _enqueue(self, batches: Iterable[int]) -> None:
        for key in batches:
            self.jobs.enqueue(RECHECK, key)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)


def _failed(record_id: int, photo: Photo, exc: Exception) -> _Checked:
    what = f"{type(exc).__name__}: {exc}"[:300]
    reason = {
        "code": "RECHECK_FAILED",
        "severity": "review",
        "message_zh": f"复核时读取或检查这张照片失败（{what}），保留原结果；可再发起一次复核重试。",
        "message_en": f"this photo could not be read or checked in the re-check ({what}); "
        "its verdict is kept, a new re-check tries it again",
        "evidence": {"error": what},
    }
    return _Checked(record_id, FAILED, [reason], photo.model_version or "", photo)


def _carried(stored: list[Any]) -> list[Finding]:
    reasons: list[Reason] = [reason_from_json(r) for r in stored if isinstance(r, dict)]
    return [Finding(r.code, r.evidence) for r in reasons if r.code in CARRIED]


def _values(c: _Checked, policy_version: str, now: dt.datetime) -> dict[str, Any]:
    return {
        "rid": c.record_id,
        "verdict": c.verdict,
        "reasons": c.reasons,
        "policy_version": policy_version,
        "model_version": c.model_version,
        "checked_at": now,
        "old_verdict": c.old.verdict,
        "old_reasons": c.old.reasons,
        "old_policy_version": c.old.policy_version,
        "old_model_version": c.old.model_version,
    }


def _since(then: dt.datetime | None, now: dt.datetime) -> float:
    return max(0.0, (now - then).total_seconds()) if then is not None else 0.0


def _run(session: Session, run_id: int, county_id: int) -> RecheckRun:
    run = session.get(RecheckRun, run_id)
    if run is None or run.county_id != county_id:
        raise RecheckRefused(
            "RECHECK_NOT_FOUND",
            f"no re-check {run_id} in your county",
            f"本县没有编号为 {run_id} 的回头看复核",
        )
    return run


STATE_ZH = {"running": "进行中", "paused": "已暂停", "done": "已完成待确认",
            "confirmed": "已确认", "superseded": "已被新的复核取代"}  # fmt: skip


def _require(run: RecheckRun, state: RunState, action: str, action_zh: str) -> None:
    if run.state != state:
        raise RecheckRefused(
            "RECHECK_STATE",
            f"re-check {run.id} is {run.state}: only a {state.value} run can {action}",
            f"回头看复核 {run.id} {STATE_ZH.get(run.state, run.state)}，"
            f"只有{STATE_ZH[state.value]}的复核可以{action_zh}",
        )
