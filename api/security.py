"""Passwords (argon2), access tokens (JWT, HS256) and the failed-login limiter."""

from __future__ import annotations

import datetime as dt
import secrets
import threading
import time
from dataclasses import dataclass

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = [
    "LoginLimiter",
    "TokenClaims",
    "decode_token",
    "hash_password",
    "make_token",
    "new_password",
    "verify_password",
]

ALGORITHM = "HS256"
_HASHER = PasswordHasher()
# verified against when the user does not exist, so timing does not tell who exists
_DUMMY_HASH = _HASHER.hash("not a real password")
_ALPHABET = "abcdefghjkmnpqrstuvwxyzACDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/l/I, B/8
MIN_PASSWORD_LENGTH = 8


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password: str, hashed: str | None) -> bool:
    """True if ``password`` matches; always spends the same argon2 time."""
    try:
        return _HASHER.verify(hashed or _DUMMY_HASH, password) and hashed is not None
    except (VerificationError, InvalidHashError):
        return False


def new_password(length: int = 10) -> tuple[str, str]:
    """A random initial password, easy to copy from a paper slip: (clear, hash)."""
    clear = "".join(secrets.choice(_ALPHABET) for _ in range(length))
    return clear, hash_password(clear)


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    expires: dt.datetime


def make_token(user_id: int, secret: str, minutes: int) -> str:
    now = dt.datetime.now(dt.UTC)
    claims = {"sub": str(user_id), "iat": now, "exp": now + dt.timedelta(minutes=minutes)}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_token(token: str, secret: str) -> TokenClaims | None:
    """The claims of a valid, unexpired token; None for anything else."""
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp"]})
        return TokenClaims(int(claims["sub"]), dt.datetime.fromtimestamp(claims["exp"], dt.UTC))
    except (jwt.InvalidTokenError, KeyError, ValueError, TypeError):
        return None


class LoginLimiter:
    """Failed logins per (username, client address): after ``max_failures`` within the
    window, that pair is locked until the window has passed. In memory: a restart
    forgets, the per-account lock in the database does not."""

    def __init__(self, max_failures: int, window_s: float) -> None:
        self.max_failures, self.window_s = max_failures, window_s
        self._failures: dict[tuple[str, str], list[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, username: str, address: str) -> float:
        """Seconds until this pair may try again; 0 when it may now."""
        now = time.monotonic()
        with self._lock:
            recent = [
                t for t in self._failures.get((username, address), []) if now - t < self.window_s
            ]
            self._failures[(username, address)] = recent
            if len(recent) < self.max_failures:
                return 0.0
            return self.window_s - (now - recent[0])

    def failed(self, username: str, address: str) -> None:
        with self._lock:
            self._failures.setdefault((username, address), []).append(time.monotonic())

    def succeeded(self, username: str, address: str) -> None:
        with self._lock:
            self._failures.pop((username, address), None)
