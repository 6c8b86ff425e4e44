"""accounts: token generation per user (revocation), login throttle per username and
address (issue 9 items 5, 6)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 11:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "users", sa.Column("token_generation", sa.Integer(), nullable=False, server_default="0")
    )
    op.create_table(
        "login_throttle",
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_allowed", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("username", "address"),
    )
    op.create_index("ix_login_throttle_last_failure", "login_throttle", ["last_failure"])


def downgrade() -> None:
    op.drop_index("ix_login_throttle_last_failure", table_name="login_throttle")
    op.drop_table("login_throttle")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("token_generation")
