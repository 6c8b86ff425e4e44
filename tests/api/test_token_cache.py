"""Verified tokens' claims are kept, but expiry, secret and bad tokens behave as before."""

from __future__ import annotations

import pytest

from api import security
from api.security import decode_token, make_token

A, B, C = ("a" * 32, "b" * 32, "c" * 32)  # HS256 keys of at least 32 bytes (PyJWT warns)


def test_a_verified_token_is_kept_and_still_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    token = make_token(7, 3, A, minutes=5)
    first = decode_token(token, A)
    assert first is not None and (first.user_id, first.generation) == (7, 3)
    assert (token, A) in security._verified
    assert decode_token(token, A) == first  # from the cache
    assert decode_token(token, B) is None  # another secret: verified again, refused
    later = first.expires.timestamp() + 1
    monkeypatch.setattr(security.time, "time", lambda: later)
    assert decode_token(token, A) is None  # expired while cached
    assert (token, A) not in security._verified


def test_bad_tokens_are_not_kept() -> None:
    token = make_token(7, 3, A, minutes=5)
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert decode_token(forged, A) is None
    assert (forged, A) not in security._verified
    assert decode_token("not a token", A) is None
    assert not any(key[0] == "not a token" for key in security._verified)


def test_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(security, "_VERIFIED_MAX", 3)
    tokens = [make_token(i, 0, C, minutes=5) for i in range(1, 6)]
    for token in tokens:
        assert decode_token(token, C) is not None
    assert len(security._verified) <= 3
    assert (tokens[-1], C) in security._verified
