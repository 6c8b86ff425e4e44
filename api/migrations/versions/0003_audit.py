"""audit: findings with their decisions, the audit trail, per-photo audit checks (issue 5)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 12:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_findings",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("county_id", sa.Integer(), sa.ForeignKey("counties.id"), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("severity", sa.String(length=8), nullable=False),
        sa.Column("town_id", sa.Integer(), sa.ForeignKey("towns.id"), nullable=True),
        sa.Column("village_id", sa.Integer(), sa.ForeignKey("villages.id"), nullable=True),
        sa.Column("day", sa.Date(), nullable=True),
        sa.Column("photo_ids", sa.JSON(), nullable=False),
        sa.Column("household_codes", sa.JSON(), nullable=False),
        sa.Column("village_ids", sa.JSON(), nullable=False),
        sa.Column("summary_zh", sa.String(length=400), nullable=False),
        sa.Column("summary_en", sa.String(length=400), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("decided_by", sa.Integer(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_findings_scope", "audit_findings", ["county_id", "status", "kind"])
    op.create_index("ix_audit_findings_town_id", "audit_findings", ["town_id"])
    op.create_index("ix_audit_findings_village_id", "audit_findings", ["village_id"])
    op.create_index("ix_audit_findings_day", "audit_findings", ["day"])
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "finding_id", sa.String(length=16), sa.ForeignKey("audit_findings.id"), nullable=False
        ),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("status_before", sa.String(length=10), nullable=False),
        sa.Column("status_after", sa.String(length=10), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_events_finding_id", "audit_events", ["finding_id"])
    op.create_table(
        "audit_photo_checks",
        sa.Column("photo_id", sa.Integer(), sa.ForeignKey("photos.id"), nullable=False),
        sa.Column("thumbnail_correlation", sa.Float(), nullable=True),
        sa.Column("thumbnail_mad", sa.Float(), nullable=True),
        sa.Column("thumbnail_matches", sa.Boolean(), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("photo_id"),
    )


def downgrade() -> None:
    op.drop_table("audit_photo_checks")
    op.drop_index("ix_audit_events_finding_id", table_name="audit_events")
    op.drop_table("audit_events")
    for name in ("day", "village_id", "town_id", "scope"):
        op.drop_index(f"ix_audit_findings_{name}", table_name="audit_findings")
    op.drop_table("audit_findings")
