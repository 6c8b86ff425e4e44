"""Refuse control characters in any path, query, form or JSON field, before a route runs.

One app-wide dependency (``create_app`` adds it to every route), so no route has to
remember it and SQLite and PostgreSQL answer the same 422. The rule itself is
``photocheck.control_chars``; multipart uploads are streamed, so their fields are
checked where they are read (``api/uploads.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request

from photocheck.control_chars import describe, find_control_char

from .errors import ApiError

__all__ = ["FREE_TEXT_FIELDS", "check_json", "check_text", "refuse_control_chars"]

# Body fields whose value is free text (line breaks allowed); all others are names, IDs.
FREE_TEXT_FIELDS = frozenset({"note", "password", "old_password", "new_password"})
_BODY_TYPES = ("application/json", "application/x-www-form-urlencoded")
_MAX_CHECKED_BODY = 4 * 1024 * 1024


def check_text(where: str, text: str, *, free_text: bool = False) -> None:
    """422 naming ``where`` when ``text`` holds a forbidden control character."""
    char = find_control_char(text, free_text=free_text)
    if char is not None:
        raise ApiError(
            422,
            "INVALID_REQUEST",
            f"{where}: contains a control character ({describe(char)})",
            details=[{"where": where, "message": f"control character {describe(char)}"}],
        )


def check_json(where: str, value: Any) -> None:
    """Every key and string of a parsed JSON value (walked without recursion)."""
    for path, text, free in _strings(where, value):
        check_text(path, text, free_text=free)


def _strings(where: str, value: Any) -> Iterator[tuple[str, str, bool]]:
    stack: list[tuple[str, Any, bool]] = [(where, value, False)]
    while stack:
        path, item, free = stack.pop()
        if isinstance(item, str):
            yield path, item, free
        elif isinstance(item, dict):
            for key, child in item.items():
                yield f"{path}.{key}", str(key), False
                stack.append((f"{path}.{key}", child, key in FREE_TEXT_FIELDS))
        elif isinstance(item, list):
            stack.extend((f"{path}.{i}", child, free) for i, child in enumerate(item))


async def refuse_control_chars(request: Request) -> None:
    """Path parameters, query values and small JSON / form bodies, all fields named."""
    for name, value in request.path_params.items():
        if isinstance(value, str):
            check_text(f"path.{name}", value)
    for name, value in parse_qsl(request.url.query, keep_blank_values=True):
        check_text(f"query.{name}", name)
        check_text(f"query.{name}", value)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in _BODY_TYPES:
        return
    length = request.headers.get("content-length", "")
    if not length.isdigit() or int(length) > _MAX_CHECKED_BODY:
        return  # too big to be one of our forms: the route's own limits answer it
    if ctype == "application/x-www-form-urlencoded":
        form = await request.form()  # parsed once: Starlette keeps it for the route
        for name, value in form.multi_items():
            check_text(f"body.{name}", name)
            if isinstance(value, str):
                check_text(f"body.{name}", value, free_text=name in FREE_TEXT_FIELDS)
        return
    try:
        parsed = json.loads(await request.body())  # kept for the route, too
    except (ValueError, RecursionError):
        return  # not JSON: the route's validation answers 422 (or 400) itself
    check_json("body", parsed)
