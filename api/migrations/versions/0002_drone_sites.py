"""drone sites: the shared-site registry and its drone photos (issue 4)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 12:10:44.357917
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sites",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("county_id", sa.Integer(), nullable=False),
        sa.Column("site_code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("town_id", sa.Integer(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["county_id"],
            ["counties.id"],
        ),
        sa.ForeignKeyConstraint(
            ["town_id"],
            ["towns.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("county_id", "site_code"),
    )
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sites_county_id"), ["county_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sites_town_id"), ["town_id"], unique=False)

    op.create_table(
        "site_photos",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("canonical_name", sa.String(length=200), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("crc32", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("format", sa.String(length=10), nullable=True),
        sa.Column("blob_path", sa.String(length=200), nullable=False),
        sa.Column("capture_time", sa.DateTime(), nullable=True),
        sa.Column("gps_lat", sa.Float(), nullable=True),
        sa.Column("gps_lon", sa.Float(), nullable=True),
        sa.Column("relative_altitude_m", sa.Float(), nullable=True),
        sa.Column("distance_m", sa.Float(), nullable=True),
        sa.Column("verdict", sa.String(length=10), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("exif", sa.JSON(), nullable=True),
        sa.Column("pdq", sa.String(length=64), nullable=True),
        sa.Column("pixel_sha256", sa.String(length=64), nullable=True),
        sa.Column("uploaded_by", sa.Integer(), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("policy_version", sa.String(length=40), nullable=False),
        sa.Column("model_version", sa.String(length=80), nullable=False),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
        ),
        sa.ForeignKeyConstraint(
            ["uploaded_by"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("canonical_name"),
        sa.UniqueConstraint("site_id", "sha256"),
    )
    with op.batch_alter_table("site_photos", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_site_photos_pixel_sha256"), ["pixel_sha256"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_site_photos_sha256"), ["sha256"], unique=False)
        batch_op.create_index(batch_op.f("ix_site_photos_site_id"), ["site_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("site_photos", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_site_photos_site_id"))
        batch_op.drop_index(batch_op.f("ix_site_photos_sha256"))
        batch_op.drop_index(batch_op.f("ix_site_photos_pixel_sha256"))

    op.drop_table("site_photos")
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sites_town_id"))
        batch_op.drop_index(batch_op.f("ix_sites_county_id"))

    op.drop_table("sites")
