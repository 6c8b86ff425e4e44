"""Passwords (argon2, computed on a small bounded pool) and access tokens (JWT, HS256).

A token carries its account's ``token_generation`` (claim ``gen``): a password change or
reset bumps the generation, so every token issued before it stops working at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import TypeVar

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = [
    "HashingBusy",
    "PasswordHashing",
    "PasswordPool",
    "TokenClaims",
    "decode_token",
    "make_token",
]

ALGORITHM = "HS256"
_ALPHABET = "abcdefghjkmnpqrstuvwxyzACDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/l/I, B/8
MIN_PASSWORD_LENGTH = 8
T = TypeVar("T")


@dataclass(frozen=True)
class PasswordHashing:
    """argon2id at the cost new hashes are made with (default: argon2-cffi's RFC 9106
    low-memory profile, 3 passes over 64 MiB on 4 lanes, ~0.25 s of CPU).

    A stored hash carries its own parameters and is verified with them, so changing the
    cost locks nobody out: old hashes keep theirs until the password changes. The dummy
    hash that unknown usernames are checked against is made at this cost, so a login
    takes the same time whether the account exists or not.
    """

    time_cost: int = 3
    memory_kib: int = 65536
    parallelism: int = 4

    @cached_property
    def _hasher(self) -> PasswordHasher:
        return PasswordHasher(self.time_cost, self.memory_kib, parallelism=self.parallelism)

    @cached_property
    def _dummy_hash(self) -> str:  # made at first use, not at every import
        return self.hash("not a real password")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password: str, hashed: str | None) -> bool:
        """True if ``password`` matches; always spends an argon2 verification."""
        try:
            return self._hasher.verify(hashed or self._dummy_hash, password) and bool(hashed)
        except (VerificationError, InvalidHashError):
            return False

    def new_password(self, length: int = 10) -> tuple[str, str]:
        """A random initial password, easy to copy from a paper slip: (clear, hash)."""
        clear = "".join(secrets.choice(_ALPHABET) for _ in range(length))
        return clear, self.hash(clear)


class HashingBusy(Exception):
    """Every password-hashing slot and queue place is taken; the caller answers 503."""


HASH_NICE = 10  # Linux: nice is per thread; 10 gives ~1/10 of a core against busy uploads


class PasswordPool:
    """Argon2 on ``concurrency`` threads of its own with at most ``queue`` waiting.

    Each argon2 call takes 64 MB and 0.1-0.2 s of CPU on 4 lanes: unbounded, a login
    flood takes the memory and the cores from uploads (and the request thread pool with
    them). Bounded, a flood costs at most ``concurrency`` hashes at a time and is
    refused at once when the queue is full. The pool's threads (and argon2's lane
    threads, which inherit it) run at a lower CPU priority, so uploads come first.
    """

    def __init__(
        self,
        concurrency: int,
        queue: int,
        nice: int = HASH_NICE,
        hashing: PasswordHashing | None = None,
    ) -> None:
        self.hashing = hashing or PasswordHashing()
        self._pool = ThreadPoolExecutor(
            concurrency, thread_name_prefix="argon2", initializer=_lower_priority, initargs=(nice,)
        )
        self._limit = concurrency + queue
        self._inflight = 0
        self.peak = 0  # the most hashes running or queued at once (tests, operators)
        self.refused = 0
        self._lock = threading.Lock()

    def _enter(self) -> None:
        with self._lock:
            if self._inflight >= self._limit:
                self.refused += 1
                raise HashingBusy
            self._inflight += 1
            self.peak = max(self.peak, self._inflight)

    def _leave(self) -> None:
        with self._lock:
            self._inflight -= 1

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` on the pool, awaited without holding a request thread.

        :exception HashingBusy: the pool and its queue are full.
        """
        self._enter()
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        finally:
            self._leave()

    async def verify(self, password: str, hashed: str | None) -> bool:
        """``PasswordHashing.verify`` on the pool (:exception HashingBusy: it is full)."""
        return await self.run(self.hashing.verify, password, hashed)

    async def hash(self, password: str) -> str:
        """``PasswordHashing.hash`` on the pool (:exception HashingBusy: it is full)."""
        return await self.run(self.hashing.hash, password)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _lower_priority(nice: int) -> None:
    # not Linux, or not allowed: the pool runs at normal priority
    if nice:
        with contextlib.suppress(AttributeError, OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


@dataclass(frozen=True)
class TokenClaims:
    user_id: int
    generation: int
    expires: dt.datetime


def make_token(user_id: int, generation: int, secret: str, minutes: int) -> str:
    now = dt.datetime.now(dt.UTC)
    claims = {
        "sub": str(user_id),
        "gen": generation,
        "iat": now,
        "exp": now + dt.timedelta(minutes=minutes),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_token(token: str, secret: str) -> TokenClaims | None:
    """The claims of a valid, unexpired token; None for anything else.

    A token whose signature was verified once is not verified again (every request
    carries one: ~0.1 ms of HMAC and JSON each): its claims are kept, keyed by the token
    and the secret, and only the expiry is checked on a hit. Revocation does not depend
    on this: the caller compares the claims' generation with the account's, read on
    every request."""
    key = (token, secret)
    claims = _verified.get(key)
    if claims is None:
        claims = _verify(token, secret)
        if claims is None:
            return None  # bad tokens are not kept: no one fills the cache with them
        _remember(key, claims)
    if claims.expires.timestamp() <= time.time():  # PyJWT's rule: valid while now < exp
        _verified.pop(key, None)
        return None
    return claims


_VERIFIED_MAX = 4096  # tokens in use at once; the oldest goes first beyond
_verified: dict[tuple[str, str], TokenClaims] = {}


def _remember(key: tuple[str, str], claims: TokenClaims) -> None:
    _verified[key] = claims
    while len(_verified) > _VERIFIED_MAX:
        with contextlib.suppress(StopIteration, KeyError, RuntimeError):  # threads race
            del _verified[next(iter(_verified))]


def _verify(token: str, secret: str) -> TokenClaims | None:
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp"]})
        return TokenClaims(
            int(claims["sub"]),
            int(claims.get("gen", 0)),
            dt.datetime.fromtimestamp(claims["exp"], dt.UTC),
        )
    except (jwt.InvalidTokenError, KeyError, ValueError, TypeError):
        return None
