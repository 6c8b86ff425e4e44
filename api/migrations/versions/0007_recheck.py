"""recheck_runs and photo_verdicts: the county's look-back re-check (issue 12 part 3)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 14:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recheck_runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("county_id", sa.Integer(), sa.ForeignKey("counties.id"), nullable=False),
        sa.Column("town_id", sa.Integer(), sa.ForeignKey("towns.id"), nullable=True),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("policy_version", sa.String(40), nullable=False),
        sa.Column("model_version", sa.String(80), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("started_by", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("active_seconds", sa.Float(), nullable=False),
        sa.Column("resumed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paused_by", sa.Integer(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("confirmed_by", sa.Integer(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("applied", sa.Integer(), nullable=True),
        sa.Column("skipped", sa.Integer(), nullable=True),
    )
    op.create_index("ix_recheck_runs_county_id", "recheck_runs", ["county_id"])
    op.create_table(
        "photo_verdicts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("recheck_runs.id"), nullable=False),
        sa.Column("photo_id", sa.Integer(), sa.ForeignKey("photos.id"), nullable=False),
        sa.Column("household_id", sa.Integer(), sa.ForeignKey("households.id"), nullable=False),
        sa.Column("is_current", sa.Boolean(), nullable=False),
        sa.Column("verdict", sa.String(10), nullable=True),
        sa.Column("reasons", sa.JSON(), nullable=True),
        sa.Column("policy_version", sa.String(40), nullable=True),
        sa.Column("model_version", sa.String(80), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("old_verdict", sa.String(10), nullable=True),
        sa.Column("old_reasons", sa.JSON(), nullable=True),
        sa.Column("old_policy_version", sa.String(40), nullable=True),
        sa.Column("old_model_version", sa.String(80), nullable=True),
        sa.UniqueConstraint("run_id", "photo_id"),
    )
    op.create_index("ix_photo_verdicts_run_id", "photo_verdicts", ["run_id"])
    op.create_index("ix_photo_verdicts_photo_id", "photo_verdicts", ["photo_id"])


def downgrade() -> None:
    op.drop_table("photo_verdicts")
    op.drop_table("recheck_runs")
