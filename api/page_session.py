"""The web pages' login: the API's bearer token kept in an HttpOnly cookie, and the
CSRF token derived from it that every state-changing request from a page carries (a
form field, or the ``X-CSRF-Token`` header of the village page's script).

Another site can make a browser send the cookie but can neither read the page's CSRF
token nor set a custom header without CORS, which this service never grants.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request

__all__ = ["COOKIE", "CSRF_HEADER", "LANG_COOKIE", "csrf_token", "page_api_token", "page_lang"]

COOKIE, LANG_COOKIE = "photocheck_token", "photocheck_lang"
CSRF_HEADER = "X-CSRF-Token"


def csrf_token(request: Request) -> str:
    """The session's form token: only a page of this site, rendered for this session,
    knows it (an HMAC of the session cookie under the secret key)."""
    secret = (request.app.state.photocheck.settings.SECRET_KEY or "").encode()
    token = request.cookies.get(COOKIE, "")
    return hmac.new(secret, ("csrf:" + token).encode(), hashlib.sha256).hexdigest()[:32]


def page_api_token(request: Request) -> str | None:
    """The cookie's token for an API call from a page, if it carries the CSRF header."""
    token = request.cookies.get(COOKIE)
    sent = request.headers.get(CSRF_HEADER)
    if token and sent and hmac.compare_digest(sent, csrf_token(request)):
        return token
    return None


def page_lang(request: Request) -> str:
    """Chinese first; ``?lang=en`` (remembered in a cookie) for English."""
    q = request.query_params.get("lang")
    if q in ("zh", "en"):
        return q
    return "en" if request.cookies.get(LANG_COOKIE) == "en" else "zh"
