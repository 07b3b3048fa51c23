"""Idempotency keys of POST /v1/messages, recorded before the command is published.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
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
        "idempotency_keys",
        sa.Column("idempotency_key", sa.String(length=512), nullable=False),
        sa.Column("send_id", sa.String(length=64), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=32), nullable=False),
        sa.Column("lease_until_us", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("published_at_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("idempotency_key", name=op.f("pk_idempotency_keys")),
    )
    # The sends accepted before this table existed were published before they were recorded:
    # their keys are finished, so that a repeat of one publishes nothing.
    op.execute(
        "INSERT INTO idempotency_keys (idempotency_key, send_id, request_hash, holder,"
        " lease_until_us, attempts, created_at_us, published_at_us)"
        " SELECT idempotency_key, send_id, request_hash, '', 0, 1, at_us, at_us FROM messages"
        " WHERE idempotency_key IS NOT NULL AND send_id IS NOT NULL AND request_hash IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
