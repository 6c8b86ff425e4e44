"""The audit's own tables, on the store's declarative base (migration 0002 in api/).

* ``audit_findings``: one row per finding ID; the computation refreshes evidence and
  ``active``; the decision (status, note, who, when) belongs to people and survives
  every refresh. A finding that is no longer produced (the photo was retaken) stays,
  inactive, with its history.
* ``audit_events``: the audit trail, append-only: who decided what, when, with what note.
* ``audit_finding_areas``: every (village, town) a finding touches, so a finding
  spanning two towns is listed, filtered and visible in both (migration 0004).
* ``audit_photo_checks``: marks which photos a refresh covered ("pending" = a photo
  without a row); for photos stored before the upload computed the EXIF thumbnail
  comparison, it also holds that comparison, made once from the original bytes.
* ``audit_refreshes``: per county, when the findings were last computed and how long
  it took, for "computed at HH:MM, N new photos pending".

``earlier_ids`` links a finding to decided findings whose photos it contains (a batch
that grew by one photo gets a new ID): their decisions and trail are shown with it.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..store.models import Base, utcnow

__all__ = [
    "AuditEvent",
    "AuditFindingArea",
    "AuditFindingRow",
    "AuditPhotoCheck",
    "AuditRefresh",
    "FindingStatus",
]


class FindingStatus(enum.StrEnum):
    OPEN = "open"
    CONFIRMED = "confirmed"
    DISMISSED = "dismissed"


class AuditFindingRow(Base):
    __tablename__ = "audit_findings"
    __table_args__ = (Index("ix_audit_findings_scope", "county_id", "status", "kind"),)
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    county_id: Mapped[int] = mapped_column(ForeignKey("counties.id"))
    kind: Mapped[str] = mapped_column(String(24))
    severity: Mapped[str] = mapped_column(String(8))
    # the first photo's town and village (display, old rows); filters use audit_finding_areas
    town_id: Mapped[int | None] = mapped_column(ForeignKey("towns.id"), index=True)
    village_id: Mapped[int | None] = mapped_column(ForeignKey("villages.id"), index=True)
    day: Mapped[dt.date | None] = mapped_column(Date, index=True)
    photo_ids: Mapped[list[Any]]
    household_codes: Mapped[list[Any]]
    village_ids: Mapped[list[Any]]
    summary_zh: Mapped[str] = mapped_column(String(400))
    summary_en: Mapped[str] = mapped_column(String(400))
    evidence: Mapped[dict[str, Any]]
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(10), default=FindingStatus.OPEN)
    note: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[dt.datetime | None]
    first_seen: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # the last refresh that wrote the row; an active finding is still seen at its county's
    # ``audit_refreshes.computed_at`` (unchanged rows are not rewritten), an inactive one
    # was last seen at this time
    last_seen: Mapped[dt.datetime] = mapped_column(default=utcnow)
    earlier_ids: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)


class AuditFindingArea(Base):
    __tablename__ = "audit_finding_areas"
    finding_id: Mapped[str] = mapped_column(ForeignKey("audit_findings.id"), primary_key=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("villages.id"), primary_key=True, index=True)
    town_id: Mapped[int] = mapped_column(ForeignKey("towns.id"), index=True)


class AuditEvent(Base):
    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    finding_id: Mapped[str] = mapped_column(ForeignKey("audit_findings.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(10))  # confirm | dismiss | reopen
    status_before: Mapped[str] = mapped_column(String(10))
    status_after: Mapped[str] = mapped_column(String(10))
    note: Mapped[str | None] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AuditPhotoCheck(Base):
    __tablename__ = "audit_photo_checks"
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id"), primary_key=True)
    thumbnail_correlation: Mapped[float | None] = mapped_column(Float)
    thumbnail_mad: Mapped[float | None] = mapped_column(Float)
    thumbnail_matches: Mapped[bool | None] = mapped_column(Boolean)
    checked_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AuditRefresh(Base):
    __tablename__ = "audit_refreshes"
    county_id: Mapped[int] = mapped_column(ForeignKey("counties.id"), primary_key=True)
    computed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    photos: Mapped[int] = mapped_column(Integer, default=0)  # photos the findings cover
    findings: Mapped[int] = mapped_column(Integer, default=0)  # active findings
    seconds: Mapped[float] = mapped_column(Float, default=0.0)  # load + compute + save
