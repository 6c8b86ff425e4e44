"""Streamed downloads: Content-Disposition (RFC 6266 + 5987), ETag, single byte ranges.

Only one range per request is served; a multi-range request gets the whole body (RFC
9110 lets a server ignore Range). An ``If-Range`` that does not match the current ETag
also gets the whole body, so a client never stitches two different archives together.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

__all__ = ["content_disposition", "ranged_response"]

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$")


def ascii_fallback(filename: str, readable: str | None = None) -> str:
    """A readable ASCII name for old clients: ``readable`` (e.g. IDs and kind) when the
    caller gives one, else the name's ASCII runs (a Chinese name would otherwise be all
    underscores), keeping the extension."""
    stem, dot, ext = (readable or filename).rpartition(".")
    if not dot:
        stem, ext = ext, ""
    safe_ext = re.sub(r"[^A-Za-z0-9]", "", ext)[:10]
    words = re.findall(r"[A-Za-z0-9][A-Za-z0-9._-]*", stem)
    base = "-".join(words).strip("._-")[:150] or "download"
    return f"{base}.{safe_ext}" if safe_ext else base


def content_disposition(
    filename: str, *, inline: bool = False, ascii_name: str | None = None
) -> str:
    """``attachment; filename="ascii"; filename*=UTF-8''percent-encoded``.

    Old clients read the ASCII fallback (``ascii_fallback``); every current browser and
    curl ``-J`` use the UTF-8 form.
    """
    nfc = "".join(
        "_" if c in '<>:"/\\|?*' or ord(c) < 32 else c
        for c in unicodedata.normalize("NFC", filename)
    )  # a path-free name, whatever the caller built it from
    fallback = ascii_fallback(nfc, ascii_name)
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(nfc, safe='')}"


def _parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """(start, end exclusive); None to send everything; "unsatisfiable" for a 416."""
    if "," in header:
        return None
    m = _RANGE.match(header)
    if m is None:
        return None  # a malformed Range header is ignored (RFC 9110 §14.2)
    first, last = m.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        n = int(last)
        if n == 0:
            return "unsatisfiable"
        return max(size - n, 0), size
    start = int(first)
    if start >= size:
        return "unsatisfiable"
    end = min(int(last) + 1, size) if last else size
    if end <= start:
        return None
    return start, end


def ranged_response(
    request: Request,
    *,
    size: int,
    etag: str,
    body: Callable[[int, int], Iterator[bytes]],
    media_type: str,
    filename: str,
    inline: bool = False,
    ascii_name: str | None = None,
) -> Response:
    """200, 206, 304 or 416 for a body of known size produced by ``body(start, end)``
    (called before the answer starts, so a store that is down still gets its 503)."""
    quoted = f'"{etag}"'
    headers = {
        "ETag": quoted,
        "Accept-Ranges": "bytes",
        "Content-Disposition": content_disposition(filename, inline=inline, ascii_name=ascii_name),
        "Cache-Control": "private, no-cache",
    }
    if_none_match = request.headers.get("if-none-match")
    if if_none_match and quoted in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    start, end, status = 0, size, 200
    header = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if header and (if_range is None or if_range.strip() == quoted):
        parsed = _parse_range(header, size)
        if parsed == "unsatisfiable":
            return Response(
                status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"}
            )
        if isinstance(parsed, tuple):
            start, end = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=media_type)
    return StreamingResponse(
        body(start, end), status_code=status, headers=headers, media_type=media_type
    )
