"""Broadcasts, their recipients, the pace each number is fed at, the users reached per minute,
and opt-outs.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "broadcasts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("phone_number_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("template", sa.JSON(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("start_at_us", sa.BigInteger(), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcasts")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_broadcasts_idempotency_key")),
    )
    op.create_index(op.f("ix_broadcasts_state_start_at_us"), "broadcasts", ["state", "start_at_us"])
    op.create_table(
        "broadcast_recipients",
        sa.Column("broadcast_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("to", sa.String(length=160), nullable=False),
        sa.Column("parameters", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.Integer(), nullable=True),
        sa.Column("published_at_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("broadcast_id", "seq", name=op.f("pk_broadcast_recipients")),
    )
    op.create_index(
        op.f("ix_broadcast_recipients_broadcast_id_status_seq"),
        "broadcast_recipients",
        ["broadcast_id", "status", "seq"],
    )
    op.create_table(
        "broadcast_reach",
        sa.Column("minute", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("users", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("minute", name=op.f("pk_broadcast_reach")),
    )
    op.create_table(
        "broadcast_pacing",
        sa.Column("phone_number_id", sa.String(length=64), nullable=False),
        sa.Column("fed_until", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("phone_number_id", name=op.f("pk_broadcast_pacing")),
    )
    op.create_table(
        "opt_outs",
        sa.Column("phone_number_id", sa.String(length=64), nullable=False),
        sa.Column("user", sa.String(length=160), nullable=False),
        sa.Column("word", sa.String(length=64), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("phone_number_id", "user", name=op.f("pk_opt_outs")),
    )
    op.create_index(
        op.f("ix_opt_outs_phone_number_id_at_us"), "opt_outs", ["phone_number_id", "at_us"]
    )


def downgrade() -> None:
    op.drop_table("opt_outs")
    op.drop_table("broadcast_pacing")
    op.drop_table("broadcast_reach")
    op.drop_table("broadcast_recipients")
    op.drop_table("broadcasts")
