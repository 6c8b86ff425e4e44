"""The look-back re-check's tables: one row per run, one verdict record per photo and run.

Nothing of an upload is overwritten by a run: its verdict records sit beside the
photo's row, each with the policy and model versions that made it, and the old verdict
it was compared with. Only the county's confirmation switches the photo's effective
verdict (``photos.verdict``/``reasons``, what retake lists and progress read) to the
run's, and the one it replaces stays in the run's record (``old_*``).
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..store.models import Base, utcnow

__all__ = ["PhotoVerdict", "RecheckRun", "RunState"]


class RunState(enum.StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    DONE = "done"  # every photo checked; waiting for the county's confirmation
    CONFIRMED = "confirmed"  # the run's verdicts are the effective ones
    SUPERSEDED = "superseded"  # done, never confirmed, and a newer run was started


class RecheckRun(Base):
    __tablename__ = "recheck_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    county_id: Mapped[int] = mapped_column(ForeignKey("counties.id"), index=True)
    town_id: Mapped[int | None] = mapped_column(ForeignKey("towns.id"))  # None: the county
    state: Mapped[str] = mapped_column(String(12))  # RunState
    policy_version: Mapped[str] = mapped_column(String(40))
    model_version: Mapped[str] = mapped_column(String(80))
    total: Mapped[int] = mapped_column(Integer)
    batch_size: Mapped[int] = mapped_column(Integer)
    started_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # the rate for "time left": seconds spent running before the last resume, + since
    active_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    resumed_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    paused_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    confirmed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    confirmed_at: Mapped[dt.datetime | None]
    applied: Mapped[int | None] = mapped_column(Integer)  # photos switched at confirmation
    # photos whose verdict changed after the run checked them (a later scene check): kept
    skipped: Mapped[int | None] = mapped_column(Integer)


class PhotoVerdict(Base):
    """A run's verdict of one photo (``verdict`` NULL: not checked yet)."""

    __tablename__ = "photo_verdicts"
    __table_args__ = (UniqueConstraint("run_id", "photo_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("recheck_runs.id"), index=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id"), index=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"))
    is_current: Mapped[bool] = mapped_column(Boolean)  # the household's photo at the start
    verdict: Mapped[str | None] = mapped_column(String(10))
    reasons: Mapped[list[Any] | None] = mapped_column(JSON)
    policy_version: Mapped[str | None] = mapped_column(String(40))
    model_version: Mapped[str | None] = mapped_column(String(80))
    checked_at: Mapped[dt.datetime | None]
    # the effective verdict it was compared with, as it was when this photo was checked
    old_verdict: Mapped[str | None] = mapped_column(String(10))
    old_reasons: Mapped[list[Any] | None] = mapped_column(JSON)
    old_policy_version: Mapped[str | None] = mapped_column(String(40))
    old_model_version: Mapped[str | None] = mapped_column(String(80))
