"""``Idempotency-Key``: insert-first claims, so racing retries become one upload.

The claim is made once the photo has arrived (its SHA-256 is known): the first request
with a key inserts a ``pending`` row naming its process (the unique (user_id, key)
constraint lets exactly one insert win); the upload then marks it ``done`` with the
response body *in the same transaction* as the photo row. A retry finds the row and
answers the stored body (200), waiting while the first is still running. A ``pending``
row whose process has died (``Liveness``: its lock is gone, e.g. killed mid-request) is
taken over at once; one older than ``STALE`` too. The same key with another photo or
household is a conflict (422), never the first photo's answer.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from photocheck.store import Database, IdempotencyKey
from photocheck.store.models import utcnow

from .liveness import Liveness

__all__ = ["Claim", "claim", "finish", "release", "upload_request"]

STALE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Claim:
    state: str  # new | done | pending | mismatch
    key_id: int | None = None
    status_code: int | None = None
    body: dict[str, Any] | None = None
    conflict: str | None = None  # mismatch: what the key was first used for


def upload_request(household_code: str, sha256: str) -> str:
    """What a key stands for: this photo (by content) for this household."""
    return f"upload:{household_code}:{sha256}"


def claim(db: Database, liveness: Liveness, user_id: int, key: str, request: str) -> Claim:
    owner = {"owner": liveness.instance}
    try:
        with db.write() as session:
            fresh = IdempotencyKey(
                user_id=user_id, key=key, request=request, status="pending", response=owner
            )
            session.add(fresh)
            session.flush()
            return Claim("new", fresh.id)
    except IntegrityError:
        pass  # the key exists: someone was first
    with db.write() as session:
        found = session.scalar(
            select(IdempotencyKey).where(
                IdempotencyKey.user_id == user_id, IdempotencyKey.key == key
            )
        )
        if found is None:  # released in between: try again from the start
            return claim(db, liveness, user_id, key, request)
        if found.request != request and not request.startswith(f"{found.request}:"):
            # (a key stored before photos were part of it names the household only)
            return Claim("mismatch", conflict=found.request)
        if found.status == "done":
            return Claim("done", found.id, found.status_code, found.response)
        holder = (found.response or {}).get("owner")
        dead = not isinstance(holder, str) or not liveness.is_alive(holder)
        if dead or utcnow() - found.created_at > STALE:
            # take over, only if nobody else did since we read it (created_at as version)
            taken = session.execute(
                update(IdempotencyKey)
                .where(
                    IdempotencyKey.id == found.id,
                    IdempotencyKey.status == "pending",
                    IdempotencyKey.created_at == found.created_at,
                )
                .values(created_at=utcnow(), response=owner)
                .execution_options(synchronize_session=False)
            )
            if taken.rowcount == 1:  # type: ignore[attr-defined]
                return Claim("new", found.id)
        return Claim("pending", found.id)


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
