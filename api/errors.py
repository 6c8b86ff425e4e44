"""Every error answer is ``{"error": {"code", "message"}}`` (plus ``details`` sometimes).

Routes raise ``ApiError``; FastAPI's own HTTP and validation errors and anything
unexpected are mapped here too, so a client never sees a stack trace.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from photocheck.errors import BlobIntegrityError, BlobNotFound, BlobStoreUnavailable

__all__ = ["ApiError", "error_body", "install_error_handlers"]

log = logging.getLogger("api")

_STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "INVALID_REQUEST",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_ERROR",
}


class ApiError(Exception):
    """An error answer: HTTP status, a stable code and a human message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: Any = None,
        headers: dict[str, str] | None = None,
        message_zh: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details, self.headers, self.message_zh = details, headers, message_zh


def error_body(
    code: str, message: str, details: Any = None, *, message_zh: str | None = None
) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if message_zh is not None:
        err["message_zh"] = message_zh
    if details is not None:
        err["details"] = details
    return {"error": err}


def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(
        error_body(exc.code, exc.message, exc.details, message_zh=exc.message_zh),
        exc.status,
        headers=exc.headers,
    )


def _allowed_methods(request: Request) -> str:
    """Every method the OpenAPI schema offers at this path (Starlette names only the
    first matching route's, so ``GET /sites`` beside ``POST /sites`` said just POST)."""
    methods: set[str] = set()
    for path, operations in request.app.openapi().get("paths", {}).items():
        pattern = "^" + re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(path)) + "$"
        if re.match(pattern, request.url.path):
            methods |= {m.upper() for m in operations}
    if "/drone-package" in request.url.path:
        methods.add("HEAD")  # its HEAD route is not in the schema
    return ", ".join(sorted(methods))


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
    # Starlette's and FastAPI's own 400s (a malformed multipart or JSON body) are what
    # the contract calls malformed input: 422, like every other
    status = 422 if exc.status_code == 400 else exc.status_code
    code = _STATUS_CODES.get(status, f"HTTP_{status}")
    message = exc.detail if isinstance(exc.detail, str) else code.lower().replace("_", " ")
    return JSONResponse(error_body(code, message), status, headers=headers)


def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"where": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")}
        for e in exc.errors()
    ]
    first = details[0] if details else {"where": "", "message": "invalid request"}
    message = f"{first['where']}: {first['message']}" if first["where"] else first["message"]
    return JSONResponse(error_body("INVALID_REQUEST", message, details), 422)


# The blob store's errors (local folder or S3), mapped once. Nothing was stored.
_BLOB_ERRORS: dict[type[Exception], tuple[int, str, str, str]] = {
    BlobStoreUnavailable: (
        503,
        "STORAGE_UNAVAILABLE",
        "photo storage is unavailable at the moment; nothing was stored, send the photo "
        "again in a minute",
        "照片存储暂时不可用，本次未保存任何内容，请稍后重新上传",
    ),
    BlobIntegrityError: (
        503,
        "STORAGE_CHECKSUM_MISMATCH",
        "the stored bytes did not match the photo's SHA-256; nothing was stored, send the "
        "photo again",
        "存储的数据与照片的 SHA-256 校验值不符，本次未保存任何内容，请重新上传",
    ),
    BlobNotFound: (
        404,
        "PHOTO_FILE_MISSING",
        "the photo's file is missing from storage; the error has been logged for the operator",
        "存储中找不到该照片文件，已记录错误，请联系系统管理员",
    ),
}


def _blob_error(_: Request, exc: Exception) -> JSONResponse:
    for kind, (status, code, message, message_zh) in _BLOB_ERRORS.items():
        if isinstance(exc, kind):
            log.error("blob store: %s: %s", code, exc)
            headers = {"Retry-After": "30"} if status == 503 else None
            return JSONResponse(
                error_body(code, message, message_zh=message_zh), status, headers=headers
            )
    return _unexpected(_, exc)


def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return JSONResponse(error_body("INTERNAL_ERROR", "internal error; it has been logged"), 500)


class _AnswerUnexpected:
    """Answer an unexpected exception with the 500 JSON here, and do not raise it on.

    Starlette's ``ServerErrorMiddleware`` (where an ``Exception`` handler goes) sends
    the answer and then re-raises, so that the server logs it; uvicorn, seeing an
    exception after the response started, closes the connection. Every 5xx then cost
    the client its keep-alive connection. This sits inside it and ends the request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if started:  # half an answer is on the wire: only closing can end it
                raise
            response = _unexpected(Request(scope), exc)
            await response(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for kind in _BLOB_ERRORS:
        app.add_exception_handler(kind, _blob_error)
    app.add_exception_handler(Exception, _unexpected)  # errors raised outside the middleware
    app.add_middleware(_AnswerUnexpected)
