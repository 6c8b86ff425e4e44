"""audit: every town/village a finding touches, links to earlier decided findings,
per-county refresh state (issue 5 follow-up)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 12:40:00
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_finding_areas",
        sa.Column(
            "finding_id", sa.String(length=16), sa.ForeignKey("audit_findings.id"), nullable=False
        ),
        sa.Column("village_id", sa.Integer(), sa.ForeignKey("villages.id"), nullable=False),
        sa.Column("town_id", sa.Integer(), sa.ForeignKey("towns.id"), nullable=False),
        sa.PrimaryKeyConstraint("finding_id", "village_id"),
    )
    op.create_index("ix_audit_finding_areas_village_id", "audit_finding_areas", ["village_id"])
    op.create_index("ix_audit_finding_areas_town_id", "audit_finding_areas", ["town_id"])
    op.create_table(
        "audit_refreshes",
        sa.Column("county_id", sa.Integer(), sa.ForeignKey("counties.id"), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("photos", sa.Integer(), nullable=False),
        sa.Column("findings", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("county_id"),
    )
    with op.batch_alter_table("audit_findings") as batch:
        batch.add_column(sa.Column("earlier_ids", sa.JSON(), nullable=True))
    _backfill_areas()


def _backfill_areas() -> None:
    """Existing findings get their areas from their stored village IDs."""
    bind = op.get_bind()
    towns: dict[int, int] = dict(bind.execute(sa.text("SELECT id, town_id FROM villages")).all())
    findings = sa.table(
        "audit_findings", sa.column("id", sa.String), sa.column("village_ids", sa.JSON)
    )
    areas = sa.table(
        "audit_finding_areas",
        sa.column("finding_id", sa.String),
        sa.column("village_id", sa.Integer),
        sa.column("town_id", sa.Integer),
    )
    rows = []
    stored: Iterable[Any] = bind.execute(sa.select(findings.c.id, findings.c.village_ids))
    for fid, village_ids in stored:
        for vid in dict.fromkeys(village_ids or ()):
            if int(vid) in towns:
                rows.append({"finding_id": fid, "village_id": int(vid), "town_id": towns[int(vid)]})
    if rows:
        op.bulk_insert(areas, rows)


def downgrade() -> None:
    with op.batch_alter_table("audit_findings") as batch:
        batch.drop_column("earlier_ids")
    op.drop_table("audit_refreshes")
    op.drop_index("ix_audit_finding_areas_town_id", table_name="audit_finding_areas")
    op.drop_index("ix_audit_finding_areas_village_id", table_name="audit_finding_areas")
    op.drop_table("audit_finding_areas")
