"""Photo upload: stream, check, compare with other households, store, answer at once."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from photocheck import PhotoContext, Policy, Report, check_photo
from photocheck.audit.thumbnail import thumbnail_metrics
from photocheck.store import Household
from photocheck.store.context import photo_context as context_for
from photocheck.store.intake import IntakeResult, Upload

from .. import deps, idempotency
from ..deps import State
from ..errors import ApiError, validation_messages
from ..input_guard import check_json
from ..schemas import Capture, UploadOut
from ..settings import Settings
from ..state import AppState
from ..uploads import ParsedUpload, looks_like_image, read_upload

router = APIRouter(tags=["photos"])

PENDING_WAIT_S = 60.0  # a retry waits this long for the first request with its key


@router.post(
    "/households/{household_id}/photos",
    status_code=201,
    response_model=UploadOut,
    responses={200: {"model": UploadOut, "description": "a retry: the stored answer"}},
)
async def upload_photo(
    request: Request,
    household_id: Annotated[str, Path(max_length=64)],
    token: Annotated[str | None, Depends(deps._bearer)],
    practice: Annotated[bool, Query(description="模拟录入: check, store nothing")] = False,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    """Multipart `file` (+ optional `capture` JSON); 201 with the verdict and reasons.

    The answer's ``Server-Timing`` header gives the time of each stage (ms), for the
    upload benchmark and a browser's network panel.
    """
    state = deps.get_state(request)
    with state.intake.foreground.busy():  # background work waits meanwhile
        return await _upload(request, state, household_id, token, practice, idempotency_key)


async def _upload(
    request: Request,
    state: AppState,
    household_id: str,
    token: str | None,
    practice: bool,
    idempotency_key: str | None,
) -> JSONResponse:
    laps = _Laps()
    user_id, household = await run_in_threadpool(_authorise, state, token, household_id)
    laps.lap("authorise")
    claim: idempotency.Claim | None = None
    parsed = await read_upload(request, state.blobs, state.settings.max_upload_bytes)
    laps.lap("read")
    try:
        if idempotency_key and not practice:
            # claimed once the photo is here: a request cut off while sending left nothing
            what = idempotency.upload_request(household.household_code, parsed.blob.sha256)
            claim = await _claim(state, user_id, idempotency_key, what)
            if claim.state == "done":
                return JSONResponse(claim.body, status_code=200)
            laps.lap("claim")
        result = await run_in_threadpool(
            _process, state, household, user_id, parsed, practice, claim, laps
        )
        laps.lap("resume")
    except BaseException:
        if claim is not None and claim.key_id is not None:
            await run_in_threadpool(idempotency.release, state.db, claim.key_id)
        raise
    finally:
        parsed.blob.discard()  # a no-op once the blob has been stored
    response = JSONResponse(_body(result, practice), status_code=201)
    laps.lap("respond")
    response.headers["Server-Timing"] = laps.header()
    return response


class _Laps:
    """Wall-clock time of the upload's stages (seconds), for ``Server-Timing``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._t
        self._t = now

    def split(self, seconds: dict[str, float], rest: str) -> None:
        """The time since the last lap, as ``seconds`` measured inside plus ``rest``."""
        inside = sum(seconds.values())
        for stage, secs in seconds.items():
            self.seconds[stage] = self.seconds.get(stage, 0.0) + secs
        self.lap(rest)
        self.seconds[rest] -= inside

    def header(self) -> str:
        return ", ".join(f"{k};dur={v * 1000:.2f}" for k, v in self.seconds.items())


async def _claim(state: State, user_id: int, key: str, request: str) -> idempotency.Claim:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PENDING_WAIT_S
    assert state.liveness is not None
    while True:
        claim = await run_in_threadpool(
            idempotency.claim, state.db, state.liveness, user_id, key, request
        )
        if claim.state == "mismatch":
            raise ApiError(
                422,
                "IDEMPOTENCY_KEY_REUSED",
                _conflict(request, claim.conflict or ""),
                message_zh="该 Idempotency-Key 已用于另一张照片或另一户，请换一个新的键",
            )
        if claim.state != "pending":
            return claim
        if loop.time() > deadline:
            raise ApiError(
                409,
                "UPLOAD_IN_PROGRESS",
                "an upload with this key is still running",
                message_zh="使用该 Idempotency-Key 的上传仍在进行，请稍后重试",
            )
        await asyncio.sleep(0.05)


def _conflict(request: str, first: str) -> str:
    """Which part differs: the household, or the photo (by SHA-256)."""
    household, sha = _parts(request)
    first_household, first_sha = _parts(first)
    if household != first_household:
        return (
            f"this Idempotency-Key was used for household {first_household!r}, not"
            f" {household!r}; use a new key for a new upload"
        )
    return (
        f"this Idempotency-Key was used for another photo (SHA-256 {first_sha[:12]}…, this one"
        f" {sha[:12]}…); use a new key for a new photo"
    )


def _parts(request: str) -> tuple[str, str]:
    """(household, sha256) of ``upload_request``; a key stored before: (household, "")."""
    body = request.removeprefix("upload:")
    household, _, sha = body.rpartition(":")
    return (household, sha) if len(sha) == 64 else (body, "")


def _authorise(state: AppState, token: str | None, household_id: str) -> tuple[int, Household]:
    """The upload's dependencies (``deps.upload_caller``: caller, scope, household,
    village role) in one worker-thread hop instead of one per dependency: each hop costs
    the event loop, and so every request, GIL time."""
    with state.db.session() as session:
        user, household = deps.upload_caller(state, session, token, household_id)
        return user.id, household  # village, town and county loaded with it (joinedload)


def _process(
    state: State,
    household: Household,
    user_id: int,
    parsed: ParsedUpload,
    practice: bool,
    claim: idempotency.Claim | None,
    laps: _Laps,
) -> IntakeResult:
    """The blocking part, in a worker thread: decode and check, then the intake."""
    laps.lap("queue")
    data = parsed.blob.read()  # bounded by the upload limit; decoded from memory anyway
    if not looks_like_image(data[:32]):
        raise ApiError(415, "NOT_AN_IMAGE", "the file is not an image (JPEG, PNG, HEIC, WebP)")
    capture = _capture(parsed.fields.get("capture"), state.policy)
    context = photo_context(household, capture, state.settings, state.policy)
    laps.lap("prepare")
    report = check_photo(
        data,
        policy=state.policy,
        model=state.model,
        context=context,
        sha256=parsed.blob.sha256,  # hashed as it streamed in
    )
    laps.lap("check")
    thumbnail = report.metadata.thumbnail if report.metadata else None  # for the audit
    report = dataclasses.replace(
        report, metrics={**report.metrics, **thumbnail_metrics(report.photo, thumbnail)}
    )
    laps.lap("thumbnail")
    upload = Upload(
        household_id=household.id,
        user_id=user_id,
        report=report,
        blob=None if practice else parsed.blob,
        capture=capture.model_dump(mode="json") if capture else None,
        embedding=_embedding(report),
        practice=practice,
        household=household,  # loaded by the scope check: not read again
    )

    def on_commit(session: Session, result: IntakeResult) -> None:
        if claim is not None and claim.key_id is not None:
            idempotency.finish(session, claim.key_id, 201, _body(result, practice))

    result = state.intake.submit(upload, on_commit=on_commit)
    laps.split(result.timings, "intake_other")
    if state.audit is not None and not practice:
        state.audit.poke()  # the audit's findings are refreshed soon, in the background
    laps.lap("audit_poke")
    return result


def _body(result: IntakeResult, practice: bool) -> dict[str, Any]:
    return {**result.to_json(), "practice": practice}


def _capture(raw: str | None, policy: Policy) -> Capture | None:
    if raw is None or not raw.strip():
        return None
    try:
        parsed = json.loads(raw)
    except RecursionError:
        msg = "`capture` is not valid capture JSON: nested too deeply"
        zh = "capture 不是合法的 JSON：嵌套层数太多"
        raise ApiError(422, "INVALID_REQUEST", msg, message_zh=zh) from None
    except json.JSONDecodeError as exc:
        msg = f"`capture` is not valid JSON: {exc.msg} (character {exc.pos})"
        zh = f"capture 不是合法的 JSON（第 {exc.pos} 个字符）"
        raise ApiError(422, "INVALID_REQUEST", msg, message_zh=zh) from None
    check_json("capture", parsed)
    try:
        capture = Capture.model_validate(parsed)
    except ValidationError as exc:
        msg, zh, details = validation_messages(exc.errors(), prefix="capture")
        raise ApiError(422, "INVALID_REQUEST", msg, message_zh=zh, details=details) from None
    if capture.device_time is not None and capture.device_time.tzinfo is None:
        # the phone's local clock without an offset: the campaign's local time
        capture.device_time = capture.device_time.replace(tzinfo=policy.metadata.tz)
    return capture


def photo_context(
    household: Household, capture: Capture | None, settings: Settings, policy: Policy
) -> PhotoContext:
    """Where the photo should have been taken (the library's one rule, also the re-check's)."""
    stored = capture.model_dump(mode="json") if capture is not None else None
    return context_for(household, stored, settings.GPS_RADIUS_M)


def _embedding(report: Report) -> tuple[float, ...] | None:
    """The content model's pooled features (for same-scene candidates)."""
    return report.scores.embedding if report.scores is not None else None
