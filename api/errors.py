"""Every error answer is ``{"error": {"code", "message", "message_zh"}}`` (plus
``details`` sometimes).

Routes raise ``ApiError``; FastAPI's own HTTP and validation errors and anything
unexpected are mapped here too, so a client never sees a stack trace. The village
verifier and the county clerk read Chinese: every answer carries ``message_zh``. A route
gives its own when the message is specific; otherwise the code's (or the status's)
Chinese line below stands in, so a new error is never without one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from photocheck.errors import (
    BlobIntegrityError,
    BlobNotFound,
    BlobStoreUnavailable,
    PhotoOfOtherSite,
    RecheckRefused,
    SiteError,
    SiteNotFound,
)

__all__ = [
    "ApiError",
    "error_body",
    "install_error_handlers",
    "recheck_error",
    "validation_messages",
    "zh_for",
]

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


# The Chinese line of a code when the route gives none of its own.
_ZH_BY_CODE = {
    "BAD_CREDENTIALS": "用户名或密码错误",
    "UNAUTHORIZED": "请先登录（缺少或已失效的登录凭证）",
    "FORBIDDEN": "当前账号无权进行此操作",
    "LOGIN_REQUIRED": "请先登录",
    "PASSWORD_CHANGE_REQUIRED": "请先修改初始密码",
    "TOO_MANY_LOGIN_FAILURES": "登录失败次数过多，请稍后再试",
    "NOT_FOUND": "找不到请求的内容",
    "HOUSEHOLD_NOT_FOUND": "本县没有该农户",
    "TOWN_NOT_FOUND": "本县没有该乡镇",
    "VILLAGE_NOT_FOUND": "本县没有该村",
    "USER_NOT_FOUND": "本县没有该账号",
    "SITE_NOT_FOUND": "本县没有该集中安置点",
    "PHOTO_NOT_FOUND": "找不到该照片",
    "FINDING_NOT_FOUND": "找不到该核查线索",
    "PHOTO_UNREADABLE": "已存照片无法显示",
    "NO_DRONE_PHOTOS": "该村还没有航拍照片",
    "USERNAME_TAKEN": "用户名已被占用",
    "SITE_EXISTS": "该安置点已登记",
    "PHOTO_OF_OTHER_SITE": "这张照片已登记在另一个安置点",
    "UPLOAD_IN_PROGRESS": "同一请求的上传仍在进行，请稍后重试",
    "IDEMPOTENCY_KEY_REUSED": "该幂等键已用于另一个请求",
    "IMPORT_INVALID": "农户名单有误，未导入任何一行",
    "INVALID_REQUEST": "请求格式有误",
    "INVALID_SITE": "安置点信息有误",
    "INVALID_DECISION": "该处理决定无效",
    "UNKNOWN_HOUSEHOLDS": "名单中有本县不存在的农户",
    "NOT_AN_IMAGE": "文件不是图片（支持 JPEG、PNG、HEIC、WebP）",
    "PAYLOAD_TOO_LARGE": "文件超过大小限制",
    "UNSUPPORTED_MEDIA_TYPE": "不支持的请求格式",
    "AUDIT_UNAVAILABLE": "核查服务暂不可用",
    "DATABASE_UNAVAILABLE": "数据库暂时不可用，请稍后重试",
    "AUDIT_REFRESH_FAILED": "核查结果更新失败，请稍后再试",
    "METHOD_NOT_ALLOWED": "不支持该请求方法",
    "INTERNAL_ERROR": "服务器内部错误，已记录",
}
_ZH_BY_STATUS = {
    400: "请求有误",
    401: "请先登录",
    403: "当前账号无权进行此操作",
    404: "找不到请求的内容",
    405: "不支持该请求方法",
    409: "与现有数据冲突",
    413: "内容超过大小限制",
    415: "不支持的内容格式",
    422: "请求内容有误",
    429: "请求过于频繁，请稍后再试",
    503: "服务暂不可用，请稍后再试",
}


def zh_for(code: str, status: int) -> str:
    """The Chinese line of an error that has no specific one."""
    return _ZH_BY_CODE.get(code) or _ZH_BY_STATUS.get(status) or f"请求失败（{status}）"


class ApiError(Exception):
    """An error answer: HTTP status, a stable code and a human message in both languages."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        message_zh: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.message_zh = message_zh or zh_for(code, status)
        self.details, self.headers = details, headers


RECHECK_STATUS = {"RECHECK_RUNNING": 409, "RECHECK_STATE": 409, "RECHECK_NOT_FOUND": 404}


def recheck_error(exc: RecheckRefused) -> ApiError:
    """The library's refusal of a re-check action as an answer (JSON, or a page on /audit)."""
    status = RECHECK_STATUS.get(exc.code, 409)
    return ApiError(status, exc.code, exc.message, message_zh=exc.message_zh)


def error_body(
    code: str, message: str, details: Any = None, *, message_zh: str | None = None
) -> dict[str, Any]:
    err: dict[str, Any] = {
        "code": code,
        "message": message,
        "message_zh": message_zh or zh_for(code, 0),
    }
    if details is not None:
        err["details"] = details
    return {"error": err}


HtmlErrorPage = Callable[[Request, "ApiError"], Response]


def _api_error_handler(
    html_pages: tuple[str, HtmlErrorPage] | None,
) -> Callable[[Request, Exception], Response]:
    def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        if html_pages is not None and exc.status >= 400:
            prefix, page = html_pages
            path = request.url.path
            if path == prefix or path.startswith(prefix + "/"):
                return page(request, exc)
        body = error_body(exc.code, exc.message, exc.details, message_zh=exc.message_zh)
        return JSONResponse(body, exc.status, headers=exc.headers)

    return handle


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
    body = error_body(code, message, message_zh=zh_for(code, status))
    return JSONResponse(body, status, headers=headers)


# pydantic's error types, in Chinese; anything else is "取值无效".
_ZH_BY_TYPE = {
    "missing": "必须填写",
    "extra_forbidden": "不是可用的字段",
    "string_too_short": "太短",
    "string_too_long": "太长",
    "too_short": "项数太少",
    "too_long": "项数太多",
    "string_type": "应为文本",
    "int_type": "应为整数",
    "int_parsing": "应为整数",
    "float_type": "应为数字",
    "float_parsing": "应为数字",
    "finite_number": "应为有限的数字",
    "bool_type": "应为 true 或 false",
    "bool_parsing": "应为 true 或 false",
    "greater_than": "太小",
    "greater_than_equal": "太小",
    "less_than": "太大",
    "less_than_equal": "太大",
    "literal_error": "不是允许的取值",
    "enum": "不是允许的取值",
    "json_invalid": "不是合法的 JSON",
    "json_type": "不是合法的 JSON",
    "dict_type": "应为 JSON 对象",
    "model_type": "应为 JSON 对象",
    "model_attributes_type": "应为 JSON 对象",
    "list_type": "应为列表",
    "datetime_parsing": "不是合法的日期时间",
    "datetime_from_date_parsing": "不是合法的日期时间",
    "datetime_type": "不是合法的日期时间",
    "date_parsing": "不是合法的日期",
    "date_from_datetime_parsing": "不是合法的日期",
    "string_pattern_mismatch": "格式不对",
    "value_error": "取值无效",
}
_LOCATIONS = {"body", "query", "path", "header", "cookie", "form"}


def validation_messages(
    errors: Sequence[Mapping[str, Any]], prefix: str = ""
) -> tuple[str, str, list[dict[str, str]]]:
    """(message, message_zh, details) of pydantic errors, each naming its field.

    ``prefix`` names the JSON the errors are about when it is one form field (``capture``).
    """
    details = []
    for e in errors:
        loc = [str(p) for p in e.get("loc", ())]
        field = ".".join(p for i, p in enumerate(loc) if i or p not in _LOCATIONS)
        field = ".".join(p for p in (prefix, field) if p) or "request"
        zh = _ZH_BY_TYPE.get(str(e.get("type", "")), "取值无效")
        details.append(
            {
                "where": ".".join(loc) if loc else field,
                "field": field,
                "message": str(e.get("msg", "invalid")),
                "message_zh": f"{field} {zh}",
            }
        )
    if not details:
        return "invalid request", "请求内容有误", []
    first = details[0]
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    more_zh = f"（另有 {len(details) - 1} 处）" if len(details) > 1 else ""
    message = f"{first['field']}: {first['message']}{more}"
    return message, f"字段 {first['message_zh']}{more_zh}", details


def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    message, message_zh, details = validation_messages(exc.errors())
    body = error_body("INVALID_REQUEST", message, details, message_zh=message_zh)
    return JSONResponse(body, 422)


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


def _site_error(request: Request, exc: Exception) -> JSONResponse:
    """A site photo the library's site intake refused (``photocheck.store.site_intake``)."""
    if isinstance(exc, PhotoOfOtherSite):
        zh = f"这张照片已登记在安置点「{exc.site_code}」，文件名 {exc.canonical_name}"
        return JSONResponse(error_body("PHOTO_OF_OTHER_SITE", str(exc), message_zh=zh), 409)
    if isinstance(exc, SiteNotFound):
        body = error_body("SITE_NOT_FOUND", "the site was removed", message_zh="该安置点已被删除")
        return JSONResponse(body, 404)
    return _unexpected(request, exc)


def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    body = error_body("INTERNAL_ERROR", "internal error; it has been logged")
    return JSONResponse(body, 500)


def _database_down(_: Request, exc: Exception) -> JSONResponse:
    """PostgreSQL restarting or unreachable: 503, retry later (the pool reconnects by
    itself, ``pool_pre_ping``); the transaction was rolled back, nothing half-written."""
    if isinstance(exc, DBAPIError) and not (
        isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated
    ):
        return _unexpected(_, exc)
    log.warning("database unavailable: %s", exc)
    body = error_body(
        "DATABASE_UNAVAILABLE",
        "the database is unavailable; try again shortly",
        message_zh="数据库暂时不可用，请稍后重试",
    )
    return JSONResponse(body, 503, headers={"Retry-After": "5"})


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


def install_error_handlers(
    app: FastAPI, html_pages: tuple[str, HtmlErrorPage] | None = None
) -> None:
    """``html_pages``: (path prefix, renderer) of the web pages whose errors are pages."""
    app.add_exception_handler(ApiError, _api_error_handler(html_pages))
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(DBAPIError, _database_down)
    for kind in _BLOB_ERRORS:
        app.add_exception_handler(kind, _blob_error)
    app.add_exception_handler(SiteError, _site_error)
    app.add_exception_handler(Exception, _unexpected)  # errors raised outside the middleware
    app.add_middleware(_AnswerUnexpected)
