"""``Idempotency-Key``: insert-first claims, so racing retries become one upload.

The first request with a key inserts a ``pending`` row (the unique (user_id, key)
constraint lets exactly one insert win); the upload then marks it ``done`` with the
response body *in the same transaction* as the photo row. A retry finds the row and
answers the stored body (200), waiting briefly while the first is still running. A
``pending`` row older than ``STALE`` (its request died with the process) may be taken
over.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from photocheck.store import Database, IdempotencyKey
from photocheck.store.models import utcnow

__all__ = ["Claim", "claim", "finish", "release"]

STALE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Claim:
    state: str  # new | done | pending | mismatch
    key_id: int | None = None
    status_code: int | None = None
    body: dict[str, Any] | None = None


def claim(db: Database, user_id: int, key: str, request: str) -> Claim:
    try:
        with db.write() as session:
            fresh = IdempotencyKey(user_id=user_id, key=key, request=request, status="pending")
            session.add(fresh)
            session.flush()
            return Claim("new", fresh.id)
    except IntegrityError:
        pass  # the key exists: someone was first
    with db.write() as session:
        row = session.scalar(
            select(IdempotencyKey).where(
                IdempotencyKey.user_id == user_id, IdempotencyKey.key == key
            )
        )
        if row is None:  # released in between: try again from the start
            return claim(db, user_id, key, request)
        if row.request != request:
            return Claim("mismatch")
        if row.status == "done":
            return Claim("done", row.id, row.status_code, row.response)
        if utcnow() - row.created_at > STALE:
            row.created_at = utcnow()
            return Claim("new", row.id)
        return Claim("pending", row.id)


def finish(session: Session, key_id: int, status_code: int, body: dict[str, Any]) -> None:
    """Record the answer; call inside the transaction that stores the upload."""
    row = session.get(IdempotencyKey, key_id)
    assert row is not None
    row.status, row.status_code, row.response = "done", status_code, body


def release(db: Database, key_id: int) -> None:
    """Forget a pending claim whose request failed, so that a retry runs afresh."""
    with db.write() as session:
        session.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.id == key_id, IdempotencyKey.status == "pending"
            )
        )
