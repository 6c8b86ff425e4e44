"""What ``/openapi.json`` says beyond the routes' own signatures: the error answers each
operation really gives, the media types of downloads, the upload bodies.

Kept in one table so that the schema a client (or schemathesis, in the tests) reads is
the service's real behaviour; ``create_app`` installs it. Every operation may answer
422 (malformed input, control characters); every one behind a token 401 (no or bad
token) and 403 (initial password not yet changed, or outside the caller's role/area).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

__all__ = ["install_openapi"]

P = "/api/v1"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# (method, path) -> error statuses besides 401/403/422
_ERRORS: dict[tuple[str, str], tuple[int, ...]] = {
    ("post", f"{P}/auth/token"): (401, 429),
    ("post", f"{P}/households/import"): (413, 415),
    ("get", f"{P}/households/{{household_id}}"): (404,),
    ("post", f"{P}/households/{{household_id}}/photos"): (404, 409, 413, 415, 503),
    ("get", f"{P}/sites/{{site_id}}"): (404,),
    ("post", f"{P}/sites"): (404, 409),
    ("patch", f"{P}/sites/{{site_id}}"): (404,),
    ("put", f"{P}/sites/{{site_id}}/households"): (404,),
    ("post", f"{P}/sites/{{site_id}}/photos"): (404, 409, 413, 415, 503),
    ("get", f"{P}/sites/{{site_id}}/photos/{{photo_id}}/file"): (404, 416, 503),
    ("get", f"{P}/villages/{{village_id}}/drone-package"): (404, 416, 503),
    ("post", f"{P}/users/town"): (404, 409),
    ("post", f"{P}/users/{{username}}/reset-password"): (404,),
    ("get", f"{P}/audit/findings"): (404,),
    ("post", f"{P}/audit/refresh"): (503,),
    ("get", f"{P}/audit/findings/{{finding_id}}"): (404,),
    ("post", f"{P}/audit/findings/{{finding_id}}/decision"): (404,),
    # the look-back re-check (409: another run is active, or the run's state forbids it)
    ("post", f"{P}/rechecks"): (404, 409),
    ("get", f"{P}/rechecks/{{run_id}}"): (404,),
    ("post", f"{P}/rechecks/{{run_id}}/pause"): (404, 409),
    ("post", f"{P}/rechecks/{{run_id}}/resume"): (404, 409),
    ("post", f"{P}/rechecks/{{run_id}}/confirm"): (404, 409),
    ("get", f"{P}/rechecks/{{run_id}}/changes"): (404,),
    # tus resumable uploads (the tus protocol's own codes: 400, 412, 460)
    ("post", f"{P}/uploads"): (400, 412, 413, 503),
    ("head", f"{P}/uploads/{{upload_id}}"): (404, 412, 423, 503),
    ("patch", f"{P}/uploads/{{upload_id}}"): (400, 404, 409, 412, 415, 423, 460, 503),
    ("delete", f"{P}/uploads/{{upload_id}}"): (404, 412, 423, 503),
}
_DESCRIPTIONS = {
    400: "a tus header is missing or malformed",
    412: "send Tus-Resumable: 1.0.0",
    423: "the upload is being written; retry",
    460: "the upload's SHA-256 does not match its bytes",
    401: "not logged in, or the token is invalid or expired",
    403: "the initial password must be changed first, or this is outside your role or area",
    404: "not found in your county",
    409: "conflicts with what is stored (already registered, still being uploaded; a re-check "
    "already active, or in a state that does not allow this)",
    413: "larger than the upload limit",
    415: "not an image / not a household file",
    416: "the requested range is outside the file",
    422: "malformed input: field errors, control characters, out-of-range IDs",
    429: "too many failed logins from this address; retry after Retry-After seconds",
    503: "the blob store (or the audit worker) is unavailable; retry later",
}
_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "message_zh": {"type": "string"},
                "details": {},
            },
        }
    },
}
_MULTIPART_PHOTO: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "capture": {"type": "string", "description": "capture JSON (optional)"},
                },
            }
        }
    },
}
_BODIES = {
    ("post", f"{P}/households/{{household_id}}/photos"): _MULTIPART_PHOTO,
    ("post", f"{P}/sites/{{site_id}}/photos"): _MULTIPART_PHOTO,
    ("post", f"{P}/households/import"): {
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            XLSX: {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
        },
    },
}
# success answers the routes cannot describe themselves
_SUCCESS: dict[tuple[str, str], dict[str, Any]] = {
    ("get", f"{P}/progress"): {
        "200": {
            "description": "the ranking (`format`: json, csv or xlsx)",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/csv": {"schema": {"type": "string"}},
                XLSX: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
    ("post", f"{P}/sites/{{site_id}}/photos"): {
        "201": {"description": "stored", "content": {"application/json": {"schema": {}}}},
        "200": {
            "description": "not stored (rejected: `stored` false), or already stored",
            "content": {"application/json": {"schema": {}}},
        },
    },
    ("get", f"{P}/rechecks/{{run_id}}/changes"): {
        "200": {
            "description": "the change report (`format`: json or xlsx)",
            "content": {
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
                XLSX: {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
    ("get", f"{P}/villages/{{village_id}}/drone-package"): {
        "200": {"description": "the zip", "content": {"application/zip": {"schema": {}}}},
        "206": {"description": "a range", "content": {"application/zip": {"schema": {}}}},
        "304": {"description": "not modified (If-None-Match)"},
    },
    ("get", f"{P}/sites/{{site_id}}/photos/{{photo_id}}/file"): {
        "200": {"description": "the original bytes", "content": {"image/*": {"schema": {}}}},
        "206": {"description": "a range", "content": {"image/*": {"schema": {}}}},
        "304": {"description": "not modified (If-None-Match)"},
    },
}


def _error(status: int) -> dict[str, Any]:
    return {
        "description": _DESCRIPTIONS[status],
        "content": {"application/json": {"schema": _ERROR_SCHEMA}},
    }


def document(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the declarations above to a schema made by FastAPI (in place; returned)."""
    for path, operations in schema.get("paths", {}).items():
        for method, op in operations.items():
            key = (method, path)
            responses = op.setdefault("responses", {})
            statuses = {422, *_ERRORS.get(key, ())}
            if op.get("security"):
                statuses |= {401, 403}
            for status in sorted(statuses):
                responses[str(status)] = _error(status)
            responses.update(_SUCCESS.get(key, {}))
            if key in _BODIES:
                op["requestBody"] = _BODIES[key]
    return schema


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(
                get_openapi(title=app.title, version=app.version, routes=app.routes)
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
