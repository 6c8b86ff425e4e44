"""What slows a login down, never locks an account: growing delays per (username,
address) kept in the database, and a per-address attempt rate kept in memory.

The delays are per address on purpose: wrong passwords sent from one place never keep
the right password from another place out, and a county reset clears them. They live
in the database so every server process counts the same failures. The address rate is
a flood guard for this process's CPU (argon2 per attempt), so memory is the right place.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from dataclasses import dataclass

from sqlalchemy import case, delete, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from photocheck.store import Database
from photocheck.store.models import LoginThrottle, utcnow

from .errors import ApiError
from .settings import Settings

__all__ = [
    "AddressRate",
    "ThrottleRules",
    "clear_failures",
    "hashing_busy",
    "login_wait",
    "record_failure",
    "too_many_attempts",
    "too_many_failures",
]

PRUNE_EVERY_S = 60.0


@dataclass(frozen=True)
class ThrottleRules:
    free_failures: int
    delay_s: float
    max_delay_s: float
    forget_s: float

    @classmethod
    def from_settings(cls, s: Settings) -> ThrottleRules:
        return cls(
            s.LOGIN_FREE_FAILURES, s.LOGIN_DELAY_S, s.LOGIN_MAX_DELAY_S, s.LOGIN_FORGET_MINUTES * 60
        )

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure in a row."""
        extra = failures - self.free_failures
        if extra <= 0:
            return 0.0
        return min(self.max_delay_s, self.delay_s * 2.0 ** min(extra - 1, 60))


def _seconds(wait: float) -> int:
    return max(1, math.ceil(wait))


def too_many_failures(wait: float) -> ApiError:
    s = _seconds(wait)
    return ApiError(
        429,
        "TOO_MANY_LOGIN_FAILURES",
        f"too many failed logins for this account from this address; try again in {s} s "
        "(the delay grows with each failure; another device is not affected)",
        message_zh=f"该账号在此地址登录失败次数过多，请 {s} 秒后再试"
        "（每次失败等待时间加长；不影响其他设备）",
        headers={"Retry-After": str(s)},
    )


def too_many_attempts(wait: float) -> ApiError:
    s = _seconds(wait)
    return ApiError(
        429,
        "TOO_MANY_LOGIN_ATTEMPTS",
        f"too many login attempts from this address; try again in {s} s",
        message_zh=f"此地址登录尝试过于频繁，请 {s} 秒后再试",
        headers={"Retry-After": str(s)},
    )


def hashing_busy() -> ApiError:
    return ApiError(
        503,
        "LOGIN_BUSY",
        "the server is busy checking other logins; try again in 2 s",
        message_zh="服务器正忙于处理其他登录，请 2 秒后再试",
        headers={"Retry-After": "2"},
    )


class AddressRate:
    """A token bucket per client address: ``per_minute`` attempts, refilled evenly."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.refill = per_minute / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}  # address -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, address: str) -> float:
        """Spend one attempt; 0 if allowed, else the seconds until one is available."""
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(address, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) * self.refill)
            if tokens < 1.0:
                self._buckets[address] = (tokens, now)
                return (1.0 - tokens) / self.refill
            self._buckets[address] = (tokens - 1.0, now)
            if len(self._buckets) > 10_000:
                self._forget_full(now)
            return 0.0

    def _forget_full(self, now: float) -> None:
        full_after = self.capacity / self.refill
        self._buckets = {a: v for a, v in self._buckets.items() if now - v[1] < full_after}


def login_wait(
    session: Session, username: str, address: str, rules: ThrottleRules
) -> tuple[float, bool]:
    """(seconds this pair must still wait, whether it has failures on record)."""
    row = session.get(LoginThrottle, (username, address))
    if row is None:
        return 0.0, False
    now = utcnow()
    if (now - row.last_failure).total_seconds() > rules.forget_s:
        return 0.0, True
    return max(0.0, (row.next_allowed - now).total_seconds()), True


_last_prune = [0.0]  # monotonic time of this process's last prune


def record_failure(db: Database, username: str, address: str, rules: ThrottleRules) -> float:
    """Count a failed login (atomically, also against other processes); returns the delay
    the pair must now wait."""
    now = utcnow()
    forgotten = now - dt.timedelta(seconds=rules.forget_s)
    bump = (
        update(LoginThrottle)
        .where(LoginThrottle.username == username, LoginThrottle.address == address)
        .values(
            failures=case(
                (LoginThrottle.last_failure < forgotten, 1), else_=LoginThrottle.failures + 1
            ),
            last_failure=now,
        )
        .returning(LoginThrottle.failures)
        .execution_options(synchronize_session=False)
    )
    for _ in range(3):  # an insert racing another process's insert: bump that row instead
        try:
            with db.write() as session:
                failures = session.scalar(bump)
                if failures is None:
                    failures = 1
                    session.execute(
                        insert(LoginThrottle).values(
                            username=username, address=address, failures=1,
                            last_failure=now, next_allowed=now,
                        )
                    )  # fmt: skip
                wait = rules.delay(failures)
                session.execute(
                    update(LoginThrottle)
                    .where(LoginThrottle.username == username, LoginThrottle.address == address)
                    .values(next_allowed=now + dt.timedelta(seconds=wait))
                )
                _prune(session, forgotten)
                return wait
        except IntegrityError:
            continue
    return 0.0


def _prune(session: Session, forgotten: dt.datetime) -> None:
    """Forget old rows now and then (floods of made-up usernames leave many)."""
    if time.monotonic() - _last_prune[0] < PRUNE_EVERY_S:
        return
    _last_prune[0] = time.monotonic()
    session.execute(delete(LoginThrottle).where(LoginThrottle.last_failure < forgotten))


def clear_failures(session: Session, username: str, address: str | None = None) -> None:
    """A successful login clears its pair; a password reset or change clears every address."""
    q = delete(LoginThrottle).where(LoginThrottle.username == username)
    if address is not None:
        q = q.where(LoginThrottle.address == address)
    session.execute(q)
