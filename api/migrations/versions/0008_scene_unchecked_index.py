"""A partial index on the photos whose same-scene check is still owed

Start-up re-queues them; without the index that is a scan of every photo (~24 s at
25 M rows, measured by scripts/bench_scale.py), with it a lookup of the few pending.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 15:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_photos_scene_unchecked",
        "photos",
        ["id"],
        sqlite_where=sa.text("scene_checked = 0"),
        postgresql_where=sa.text("NOT scene_checked"),
    )


def downgrade() -> None:
    op.drop_index("ix_photos_scene_unchecked", table_name="photos")
