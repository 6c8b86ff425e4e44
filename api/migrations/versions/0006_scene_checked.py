"""photos.scene_checked: the same-scene check runs after the answer (issue 11)

Rows stored before were checked at upload: they start as checked.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 11:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("photos", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("scene_checked", sa.Boolean(), nullable=False, server_default=sa.true())
        )


def downgrade() -> None:
    with op.batch_alter_table("photos", schema=None) as batch_op:
        batch_op.drop_column("scene_checked")
