"""The FastAPI application: ``create_app(settings)``; everything heavy is loaded once here."""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from fastapi_offline import FastAPIOffline

from photocheck import ContentModel, default_policy, jobs, load_policy
from photocheck.errors import BlobStoreUnavailable
from photocheck.recheck.runs import Recheck
from photocheck.store import BlobStore, Database, reconcile
from photocheck.store.intake import Intake
from photocheck.store.reconcile import GRACE_S
from photocheck.store.resumable import PartialStore, PartialUploads
from photocheck.store.scenes import scene_matcher

from .audit import AuditWorker
from .errors import install_error_handlers
from .input_guard import refuse_control_chars
from .jobs import job_runner
from .liveness import Liveness
from .login_limits import AddressRate
from .migrate import upgrade
from .openapi_doc import install_openapi
from .routes import audit as audit_routes
from .routes import (
    audit_pages,
    auth,
    file_matching,
    households,
    photos,
    rechecks,
    retakes,
    sites,
    tus,
    users,
    village_pages,
)
from .security import PasswordPool
from .settings import Settings
from .state import AppState

__all__ = ["API_PREFIX", "build_state", "create_app"]

API_PREFIX = "/api/v1"
log = logging.getLogger("api")


def build_state(settings: Settings, *, index: bool = True) -> AppState:
    """Open the data folder and database, migrate, reconcile, load policy/model/index
    (``index=False``: a job worker, which loads it itself: ``Intake.load_index``)."""
    settings.prepare()
    db = Database(settings.database_url)
    if settings.RUN_MIGRATIONS:
        upgrade(db.engine)
    stores = settings.blob_config().stores()
    blobs = stores["blobs"]
    for store in stores.values():
        _prepare(store)
    report = reconcile(db, blobs)
    report.temp_removed += stores["drone"].clean_staging(GRACE_S)  # site uploads' staging
    policy = load_policy(settings.POLICY) if settings.POLICY else default_policy()
    model = ContentModel(settings.MODEL) if settings.MODEL else ContentModel()
    queue = db.dialect == "postgresql"  # the PostgreSQL job queue (scale-out)
    if queue:
        jobs.install(settings.database_url)
    queued = jobs.QueueJobs(db, local_grace_s=settings.JOB_LOCAL_GRACE_S) if queue else None
    intake = Intake(
        db,
        blobs,
        policy,
        scene=scene_matcher(policy, blobs),  # [similarity] scene_matcher
        index_dir=settings.DATA_DIR / "dupindex",
        jobs=queued,
        scene_votes_bytes=int(settings.SCENE_VOTES_MB * 2**20),
    )
    if queued is not None and index and settings.JOBS_IN_SERVE:  # its uploads: checked here
        queued.run_here(intake.job_handlers())
    count = intake.rebuild_index(backfill=not queue) if index else 0
    if queue:  # the backfill runs once, as a job, not in every process
        with db.write() as session:
            jobs.enqueue(session, jobs.SCENE_BACKFILL, {}, dedupe_key=jobs.SCENE_BACKFILL)
    log.info(
        "photocheck: %d photos in the duplicate index, data in %s, blobs in %s",
        count,
        settings.DATA_DIR,
        blobs.describe(),
    )
    passwords = PasswordPool(
        settings.LOGIN_HASH_CONCURRENCY,
        settings.LOGIN_HASH_QUEUE,
        settings.LOGIN_HASH_NICE,
        settings.password_hashing(),
    )
    address_rate = AddressRate(settings.LOGIN_ATTEMPTS_PER_MINUTE)
    state = AppState(
        settings,
        db,
        blobs,
        policy,
        model,
        intake,
        passwords,
        address_rate,
        report,
        site_blobs=stores["drone"],
        previews=stores["previews"],
    )
    state.partial = _partial_store(settings, db, blobs)
    try:
        state.partial.sweep()
    except BlobStoreUnavailable as exc:  # swept later, as uploads are created
        log.error("photocheck: cannot sweep the partial uploads at start: %s", exc)
    state.recheck = Recheck(
        db,
        blobs,
        policy,
        model,
        radius_m=settings.GPS_RADIUS_M,
        jobs=jobs.QueueJobs(db) if queue else None,
        batch_size=settings.RECHECK_BATCH,
    )
    state.recheck.resume_interrupted()  # a run the last process left unfinished
    return state


def _partial_store(settings: Settings, db: Database, blobs: BlobStore) -> PartialStore:
    """Resumable uploads beside the blobs: the local folder, or the S3 bucket (any
    worker continues an upload; one writer at a time by a PostgreSQL advisory lock,
    or ``flock`` on SQLite, which is one machine anyway)."""
    expiry = dt.timedelta(hours=settings.TUS_EXPIRY_HOURS)
    if not settings.blob_config().is_s3:
        return PartialUploads(settings.partial_dir, expiry)
    from photocheck.store.s3blobs import S3BlobStore  # boto3: only when configured
    from photocheck.store.s3resumable import S3PartialUploads
    from photocheck.store.upload_locks import FileUploadLocks, PgUploadLocks, UploadLocks

    locks: UploadLocks
    if db.dialect == "postgresql":
        locks = PgUploadLocks(settings.database_url)
    else:
        locks = FileUploadLocks(settings.partial_dir / "locks")
    assert isinstance(blobs, S3BlobStore)
    _, prefix = settings.blob_config().bucket_and_prefix()
    partial = "/".join(p for p in (prefix, "partial") if p)
    return S3PartialUploads(blobs.client, blobs.bucket, partial, locks, expiry, blobs.tmp)


def _prepare(store: BlobStore) -> None:
    """A store that is down at start is logged, not fatal: uploads answer 503 until it
    is back, with no restart."""
    try:
        store.prepare()
    except BlobStoreUnavailable as exc:
        log.error("photocheck: the blob store is not available at start: %s", exc)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    state = build_state(settings)
    state.audit = worker = AuditWorker(state)
    runner = job_runner(state) if settings.JOBS_IN_SERVE else None
    state.intake.on_scene_matches = worker.scene_matches  # findings of a later scene check
    if state.recheck is not None:  # confirmed verdicts: the findings follow
        state.recheck.on_confirmed = worker.request
    state.liveness = liveness = Liveness(state.db, settings.DATA_DIR)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        worker.start()  # issue 5: findings refreshed in the background
        if state.db.dialect == "postgresql":  # other workers write too: follow their uploads
            state.intake.follow()
        if runner is not None:
            runner.start()
        yield
        if runner is not None:
            runner.stop()
        worker.stop()
        state.intake.stop_following()
        liveness.close()
        state.passwords.shutdown()
        if state.partial is not None:
            state.partial.close()
        state.db.dispose()

    # /docs and /redoc with Swagger UI / ReDoc served from the installed package, not a
    # CDN: a county network may have no internet.
    app = FastAPIOffline(
        title="photocheck",
        version="1",
        openapi_url="/openapi.json",
        lifespan=lifespan,
        static_url="/docs-assets",
        dependencies=[Depends(refuse_control_chars)],  # NUL & co.: 422 on every route
    )
    app.state.photocheck = state
    install_error_handlers(app, html_pages=("/audit", audit_pages.error_page))
    install_openapi(app)  # the error answers and media types each operation really gives
    api = APIRouter(prefix=API_PREFIX)
    for module in (auth, file_matching, households, photos, rechecks, retakes, sites, tus, users):
        api.include_router(module.router)
    api.include_router(audit_routes.router)  # issue 5: findings, decisions, progress
    app.include_router(api)
    app.include_router(audit_pages.router)  # the /audit web page
    app.include_router(village_pages.router)  # issue 12: the village's PC upload page

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, object]:
        return {
            "status": "ok",
            "photos_indexed": len(state.intake.index),
            "policy": state.policy.version,
            "model": state.model.version,
            "reconcile": state.reconcile.to_json(),
            "pid": os.getpid(),  # which worker process answered (serve --workers N)
            "jobs": getattr(state.intake.jobs, "stats", dict)(),  # queue wait vs run, per kind
        }

    return app
