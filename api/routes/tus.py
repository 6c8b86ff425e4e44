"""Resumable photo uploads over tus 1.0.0 (core + creation + termination + expiration).

For village links that break half-way through a 3–8 MB photo: the app creates an
upload (``POST /uploads`` with ``Upload-Length`` and ``Upload-Metadata``), sends the
bytes in ``PATCH`` requests from the offset ``HEAD`` reports, and after a break
continues from the last byte the server stored durably. When the last byte arrives
the whole file is checked against the client's SHA-256 and then goes through the same
intake as ``POST /households/{id}/photos`` (same checks, idempotency, answer), once.

Metadata keys (values base64, as tus says): ``household_id`` (required), ``sha256``
(required, hex), ``capture`` (the capture JSON), ``idempotency_key``, ``practice``
(``true``), ``filename``. Without an ``idempotency_key`` the upload's own ID is the
key, so a completion retried after a crash is answered, not checked again.

Where the partial bytes live (``<data>/partial/`` or the S3 bucket, so any worker
continues an upload) is ``photocheck.store.resumable``'s business: this module only
speaks the protocol, through ``PartialStore.writing``.

Implemented here rather than with a PyPI tus server: the ones for ASGI buffer each
PATCH in memory and never fsync (so a broken PATCH stores nothing and a crash can
lose acknowledged bytes), and none fits the service's auth, errors and blob store.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import functools
import hmac
import logging
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from typing import Annotated, Any, ParamSpec, TypeVar

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from photocheck.errors import BlobStoreUnavailable
from photocheck.store.resumable import (
    PartialStore,
    PartialUpload,
    PartialWriter,
    UploadBusy,
    UploadGone,
)

from .. import deps
from ..deps import State
from ..errors import ApiError
from ..state import AppState
from ..uploads import ParsedUpload
from . import photos

router = APIRouter(prefix="/uploads", tags=["resumable uploads"])
log = logging.getLogger(__name__)

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,termination,expiration"
OFFSET_TYPE = "application/offset+octet-stream"
UploadId = Annotated[str, Path(max_length=64)]


def _headers(**extra: str) -> dict[str, str]:
    return {"Tus-Resumable": TUS_VERSION, **extra}


ZH: dict[str, str] = {  # the Chinese line of each error this protocol answers
    "TUS_VERSION_UNSUPPORTED": "请使用 tus 1.0.0 协议（请求头 Tus-Resumable: 1.0.0）",
    "INVALID_UPLOAD_LENGTH": "缺少或无效的 Upload-Length（文件字节数）",
    "PAYLOAD_TOO_LARGE": "文件超过大小限制",
    "INVALID_METADATA": "Upload-Metadata 有误：需要农户编号 household_id 和文件的 SHA-256",
    "UPLOAD_NOT_FOUND": "找不到该上传（已结束、已过期或不属于本账号），请重新开始上传",
    "UPLOAD_BUSY": "该上传正在写入，请稍后重试",
    "INVALID_UPLOAD_OFFSET": "缺少 Upload-Offset",
    "UPLOAD_OFFSET_MISMATCH": "续传位置不一致，请按服务器返回的 Upload-Offset 继续",
    "UPLOAD_TOO_LONG": "发送的字节数超过了声明的文件大小",
    "UNSUPPORTED_MEDIA_TYPE": "请使用 Content-Type: application/offset+octet-stream",
    "CHECKSUM_MISMATCH": "文件的 SHA-256 与声明的不一致，请重新上传",
    "STORAGE_UNAVAILABLE": "照片存储暂时不可用，已保存的部分不会丢失，请稍后继续上传",
}


def _error(status: int, code: str, message: str, **headers: str) -> ApiError:
    return ApiError(status, code, message, headers=_headers(**headers), message_zh=ZH.get(code))


def _expires(upload: PartialUpload) -> str:
    return email.utils.format_datetime(upload.expires, usegmt=True)


def _require_tus(request: Request) -> None:
    if request.headers.get("tus-resumable") != TUS_VERSION:
        raise _error(
            412,
            "TUS_VERSION_UNSUPPORTED",
            f"send Tus-Resumable: {TUS_VERSION}",
            **{"Tus-Version": TUS_VERSION},
        )


P = ParamSpec("P")
R = TypeVar("R")


def _storage_errors(route: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """The store (S3) unreachable: 503 in the protocol's words. The bytes stored before
    are kept, so the client resumes from ``HEAD``'s offset once it is back."""

    @functools.wraps(route)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await route(*args, **kwargs)
        except BlobStoreUnavailable as exc:
            log.error("resumable upload: the store is unavailable: %s", exc)
            msg = (
                "photo storage is unavailable; the bytes stored so far are kept: resume in a minute"
            )
            raise _error(503, "STORAGE_UNAVAILABLE", msg, **{"Retry-After": "30"}) from None

    return wrapper


def _partial(state: AppState) -> PartialStore:
    assert state.partial is not None
    return state.partial


def _metadata(raw: str | None) -> dict[str, str]:
    """``Upload-Metadata``: comma-separated ``key base64value`` pairs."""
    out: dict[str, str] = {}
    for pair in (raw or "").split(","):
        if not pair.strip():
            continue
        key, _, value = pair.strip().partition(" ")
        try:
            out[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            msg = f"Upload-Metadata {key!r} is not base64 UTF-8"
            raise _error(400, "INVALID_METADATA", msg) from None
    return out


def _checked_metadata(state: AppState, meta: dict[str, str]) -> dict[str, str]:
    """Refuse at creation what would fail at completion, before any byte is sent."""
    household_id, sha = meta.get("household_id", ""), meta.get("sha256", "").lower()
    if not household_id or len(household_id) > 64:
        raise _error(400, "INVALID_METADATA", "Upload-Metadata needs household_id")
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise _error(400, "INVALID_METADATA", "Upload-Metadata needs sha256 (64 hex digits)")
    if len(meta.get("idempotency_key", "")) > 200:
        raise _error(400, "INVALID_METADATA", "idempotency_key is longer than 200 characters")
    for key, value in meta.items():
        if any(ord(c) < 32 and c not in "\t\n\r" for c in value):
            raise _error(400, "INVALID_METADATA", f"Upload-Metadata {key!r} has control characters")
    try:
        photos._capture(meta.get("capture"), state.policy)
    except ApiError as exc:
        raise _error(exc.status, exc.code, exc.message) from None
    return meta


def _owned(state: AppState, user_id: int, upload_id: str) -> PartialUpload:
    try:
        upload: PartialUpload | None = _partial(state).get(upload_id)
    except UploadGone:
        upload = None
    if upload is None or upload.user_id != user_id:  # another's upload is no upload of yours
        raise _error(404, "UPLOAD_NOT_FOUND", "no such upload (ended, expired or not yours)")
    return upload


def _caller(state: AppState, token: str | None) -> int:
    with state.db.session() as session:
        return deps.get_current_user(deps.get_any_user(state, session, token)).id


Token = Annotated[str | None, Depends(deps._bearer)]


@router.options("", status_code=204)
def tus_options(state: State) -> Response:
    """What this server speaks (no login needed)."""
    return Response(
        status_code=204,
        headers={
            "Tus-Resumable": TUS_VERSION,
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": EXTENSIONS,
            "Tus-Max-Size": str(state.settings.max_upload_bytes),
        },
    )


@router.post("", status_code=201)
async def create_upload(request: Request, state: State, token: Token) -> Response:
    """tus creation: ``Upload-Length`` and ``Upload-Metadata``; 201 with ``Location``."""
    _require_tus(request)
    await run_in_threadpool(_caller, state, token)  # 401 before anything else
    raw_length = request.headers.get("upload-length", "")
    if not raw_length.isdigit():
        raise _error(400, "INVALID_UPLOAD_LENGTH", "send Upload-Length: the file size in bytes")
    length = int(raw_length)
    if length > state.settings.max_upload_bytes:
        mb = state.settings.max_upload_bytes / (1024 * 1024)
        raise _error(413, "PAYLOAD_TOO_LARGE", f"the photo is larger than the {mb:g} MB limit")
    if length == 0:
        raise _error(400, "INVALID_UPLOAD_LENGTH", "the file is empty")
    meta = _checked_metadata(state, _metadata(request.headers.get("upload-metadata")))
    household_id = meta["household_id"]

    def create() -> PartialUpload:
        user_id, _ = photos._authorise(state, token, household_id)  # 401/403/404 now, not later
        partial = _partial(state)
        partial.sweep_now_and_then()
        return partial.create(user_id, length, meta, {})

    upload = await run_in_threadpool(create)
    return Response(
        status_code=201,
        headers=_headers(
            Location=f"{request.url.path.rstrip('/')}/{upload.id}",
            **{"Upload-Expires": _expires(upload)},
        ),
    )


@router.head("/{upload_id}")
@_storage_errors
async def upload_offset(request: Request, state: State, token: Token, upload_id: UploadId):
    """tus core: how many bytes are stored (resume from there)."""
    _require_tus(request)

    upload = await run_in_threadpool(lambda: _owned(state, _caller(state, token), upload_id))
    _release(upload_id)  # only for the upload's own account

    def look() -> int:
        partial = _partial(state)
        try:  # wait for a broken-off PATCH to let go, so the offset is final
            with partial.writing(upload_id) as writer:
                return writer.offset
        except UploadGone:
            if partial.result(upload_id) is not None:  # finished (maybe while we waited)
                return upload.length
            raise _error(404, "UPLOAD_NOT_FOUND", "no such upload") from None
        except UploadBusy:
            raise _error(423, "UPLOAD_BUSY", "the upload is being written; retry") from None

    offset = await run_in_threadpool(look)
    return Response(
        status_code=200,
        headers=_headers(
            **{
                "Upload-Offset": str(offset),
                "Upload-Length": str(upload.length),
                "Upload-Expires": _expires(upload),
                "Cache-Control": "no-store",
            }
        ),
    )


@router.patch("/{upload_id}")
@_storage_errors
async def upload_bytes(request: Request, state: State, token: Token, upload_id: UploadId):
    """tus core: append bytes at ``Upload-Offset``; the last byte gets the verdict (200)."""
    _require_tus(request)
    if request.headers.get("content-type", "").split(";")[0].strip() != OFFSET_TYPE:
        raise _error(415, "UNSUPPORTED_MEDIA_TYPE", f"send Content-Type: {OFFSET_TYPE}")
    raw_offset = request.headers.get("upload-offset", "")
    if not raw_offset.isdigit():
        raise _error(400, "INVALID_UPLOAD_OFFSET", "send Upload-Offset")
    claimed = int(raw_offset)
    upload = await run_in_threadpool(lambda: _owned(state, _caller(state, token), upload_id))
    partial = _partial(state)
    _release(upload_id)
    with ExitStack() as held:
        try:  # waits (in a thread) for a broken-off PATCH of this upload to let go
            writer = await run_in_threadpool(held.enter_context, partial.writing(upload_id))
        except UploadGone:
            done = await run_in_threadpool(partial.result, upload_id)
            if done is not None:  # finished earlier and the answer was lost: the same answer
                return _answer(upload, done)
            raise _error(404, "UPLOAD_NOT_FOUND", "no such upload") from None
        except UploadBusy:
            raise _error(423, "UPLOAD_BUSY", "the upload is being written; retry") from None
        if claimed != writer.offset:
            raise _error(
                409,
                "UPLOAD_OFFSET_MISMATCH",
                f"the upload is at byte {writer.offset}, not {claimed}",
                **{"Upload-Offset": str(writer.offset)},
            )
        try:
            await _receive(request, upload_id, writer)
        except ClientDisconnect:
            pass  # keep what arrived: the client resumes from there
        except ValueError:
            raise _error(
                400,
                "UPLOAD_TOO_LONG",
                "more bytes than Upload-Length",
                **{"Upload-Offset": str(writer.offset)},
            ) from None
        finally:
            await run_in_threadpool(_sync, writer)  # durable before anyone hears the offset
        if writer.offset < upload.length:
            return Response(
                status_code=204,
                headers=_headers(
                    **{
                        "Upload-Offset": str(writer.offset),
                        "Upload-Expires": _expires(upload),
                    }
                ),
            )
        body = await _complete(state, upload, writer, token)
    return _answer(upload, body)


def _sync(writer: PartialWriter) -> None:
    try:
        writer.sync()
    except UploadBusy:  # another writer stored bytes here meanwhile (its offset counts)
        raise _error(423, "UPLOAD_BUSY", "the upload was written by another request") from None


IDLE_S = 60.0  # a PATCH that receives nothing for this long lets go of its upload
RELEASE_POLL_S = 0.5  # how often a PATCH looks for a request of another process waiting
_receiving: dict[str, asyncio.Event] = {}  # upload ID -> "let go" for its current PATCH


def _release(upload_id: str) -> None:
    """Ask this process's PATCH of the upload, if any, to stop and keep what it has.

    A link that dies silently (no reset reaches the server) leaves the old PATCH
    waiting for bytes that never come, holding the upload; the client's new request
    would wait for it. tusd does the same ("lock release request"). A request in
    another process (S3 store) is seen by the PATCH itself: ``release_requested``."""
    event = _receiving.get(upload_id)
    if event is not None:
        event.set()


async def _watch_release(writer: PartialWriter, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(RELEASE_POLL_S)
        if await run_in_threadpool(writer.release_requested):
            stop.set()


async def _receive(request: Request, upload_id: str, writer: PartialWriter) -> None:
    """Append the body as it arrives, until its end, a release request or ``IDLE_S``."""
    stop = _receiving[upload_id] = asyncio.Event()
    chunks = request.stream().__aiter__()
    stopped = asyncio.ensure_future(stop.wait())
    watcher = asyncio.ensure_future(_watch_release(writer, stop)) if writer.polls_release else None
    try:
        while True:
            chunk = asyncio.ensure_future(chunks.__anext__())
            first = asyncio.FIRST_COMPLETED
            await asyncio.wait({chunk, stopped}, timeout=IDLE_S, return_when=first)
            if not chunk.done():  # released, or the link is silent: keep what we have
                chunk.cancel()
                return
            try:
                data = chunk.result()
            except StopAsyncIteration:
                return
            if data:
                await run_in_threadpool(writer.write, data)
    finally:
        stopped.cancel()
        if watcher is not None:
            watcher.cancel()
        if _receiving.get(upload_id) is stop:
            del _receiving[upload_id]


def _answer(upload: PartialUpload, body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(
        body,
        status_code=200,
        headers=_headers(
            **{
                "Upload-Offset": str(upload.length),
                "Upload-Expires": _expires(upload),
            }
        ),
    )


async def _complete(
    state: AppState, upload: PartialUpload, writer: PartialWriter, token: str | None
) -> dict[str, Any]:
    """All bytes are in: SHA-256 against the client's, then the one intake, once."""
    partial = _partial(state)
    # the complete file in the blob store's staging folder, hashed from what was stored
    pending = await run_in_threadpool(writer.assemble, state.blobs.tmp)
    if not hmac.compare_digest(pending.sha256, upload.metadata["sha256"].lower()):
        pending.discard()
        await run_in_threadpool(partial.delete, upload.id)
        raise _error(
            460,
            "CHECKSUM_MISMATCH",
            "the file's SHA-256 differs from the one announced; upload it again",
        )
    meta = upload.metadata
    practice = meta.get("practice", "").lower() in ("1", "true", "yes")
    try:  # the caller's right to this household, again: it may have changed since creation
        user_id, household = await run_in_threadpool(
            photos._authorise, state, token, meta["household_id"]
        )
    except BaseException:
        pending.discard()
        raise
    claim = None
    try:
        if not practice:
            key = meta.get("idempotency_key") or f"tus:{upload.id}"
            claim = await photos._claim(state, user_id, key, household.household_code)
            if claim.state == "done":  # checked before a crash: the answer, not a recheck
                assert claim.body is not None
                pending.discard()
                await run_in_threadpool(writer.finish, claim.body)
                return claim.body
        parsed = ParsedUpload(
            pending,
            meta.get("filename"),
            {"capture": meta["capture"]} if "capture" in meta else {},
        )
        result = await run_in_threadpool(
            photos._process, state, household, user_id, parsed, practice, claim, photos._Laps()
        )
    except BaseException as exc:
        pending.discard()
        if claim is not None and claim.key_id is not None:
            await run_in_threadpool(photos.idempotency.release, state.db, claim.key_id)
        if isinstance(exc, ApiError) and exc.status < 500:  # these bytes never become a photo
            await run_in_threadpool(partial.delete, upload.id)
        raise
    pending.discard()  # a no-op once stored
    body = photos._body(result, practice)
    await run_in_threadpool(writer.finish, body)
    return body


@router.delete("/{upload_id}", status_code=204)
@_storage_errors
async def terminate_upload(request: Request, state: State, token: Token, upload_id: UploadId):
    """tus termination: forget the upload and its bytes (a stored photo stays stored)."""
    _require_tus(request)

    await run_in_threadpool(lambda: _owned(state, _caller(state, token), upload_id))

    def end() -> None:
        partial = _partial(state)
        with partial.writing(upload_id):
            partial.delete(upload_id)

    _release(upload_id)
    try:
        await run_in_threadpool(end)
    except UploadBusy:
        raise _error(423, "UPLOAD_BUSY", "the upload is being written; retry") from None
    except UploadGone:
        raise _error(404, "UPLOAD_NOT_FOUND", "no such upload") from None
    return Response(status_code=204, headers=_headers())
