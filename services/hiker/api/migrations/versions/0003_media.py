"""Inbound media kept in the media store, by Meta's media id.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
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
        "media",
        sa.Column("media_id", sa.String(length=128), nullable=False),
        sa.Column("wamid", sa.String(length=255), nullable=False),
        sa.Column("phone_number_id", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("mime_type", sa.String(length=255), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("stored_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("media_id", name=op.f("pk_media")),
    )
    op.create_index(op.f("ix_media_wamid"), "media", ["wamid"])
    op.create_index(op.f("ix_media_stored_at_us"), "media", ["stored_at_us"])


def downgrade() -> None:
    op.drop_index(op.f("ix_media_stored_at_us"), table_name="media")
    op.drop_index(op.f("ix_media_wamid"), table_name="media")
    op.drop_table("media")
