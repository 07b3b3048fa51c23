"""Records: messages (both directions), statuses, conversations, webhook errors.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# SQLite gives an increasing rowid only to a column declared exactly INTEGER.
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "messages",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("phone_number_id", sa.String(length=64), nullable=False),
        sa.Column("user", sa.String(length=128), nullable=False),
        sa.Column("direction", sa.String(length=3), nullable=False),
        sa.Column("wamid", sa.String(length=255), nullable=True),
        sa.Column("idempotency_key", sa.String(length=512), nullable=True),
        sa.Column("send_id", sa.String(length=64), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=True),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("parked", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_messages_idempotency_key")),
        sa.UniqueConstraint("wamid", name=op.f("uq_messages_wamid")),
    )
    op.create_index(
        op.f("ix_messages_phone_number_id_user_at_us_id"),
        "messages",
        ["phone_number_id", "user", "at_us", "id"],
    )
    op.create_table(
        "statuses",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("wamid", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_statuses")),
        sa.UniqueConstraint("wamid", "status", name=op.f("uq_statuses_wamid_status")),
    )
    op.create_table(
        "conversations",
        sa.Column("phone_number_id", sa.String(length=64), nullable=False),
        sa.Column("user", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("last_at_us", sa.BigInteger(), nullable=False),
        sa.Column("last_direction", sa.String(length=3), nullable=False),
        sa.Column("last_type", sa.String(length=32), nullable=False),
        sa.Column("last_text", sa.Text(), nullable=True),
        sa.Column("message_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("phone_number_id", "user", name=op.f("pk_conversations")),
    )
    op.create_index(
        op.f("ix_conversations_last_at_us_phone_number_id_user"),
        "conversations",
        ["last_at_us", "phone_number_id", "user"],
    )
    op.create_table(
        "webhook_errors",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("phone_number_id", sa.String(length=64), nullable=False),
        sa.Column("code", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_errors")),
        sa.UniqueConstraint(
            "phone_number_id",
            "code",
            "at_us",
            name=op.f("uq_webhook_errors_phone_number_id_code_at_us"),
        ),
    )


def downgrade() -> None:
    op.drop_table("webhook_errors")
    op.drop_index(op.f("ix_conversations_last_at_us_phone_number_id_user"), "conversations")
    op.drop_table("conversations")
    op.drop_table("statuses")
    op.drop_index(op.f("ix_messages_phone_number_id_user_at_us_id"), "messages")
    op.drop_table("messages")
