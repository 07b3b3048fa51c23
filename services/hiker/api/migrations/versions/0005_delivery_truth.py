"""The truth of each send: statuses joined by the send's key, prices, and templates.

A status names the send it is about by ``biz_opaque_callback_data`` (the send's key) as well as
by Graph's message id, so a status that arrives before Graph's answer was recorded still finds
its send. What Meta charges for a message is kept once per message (``message_prices``), and
each message template as Meta's template webhooks last described it (``templates``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("statuses") as batch:
        batch.add_column(sa.Column("callback_data", sa.String(length=512), nullable=True))
    op.create_index(op.f("ix_statuses_callback_data"), "statuses", ["callback_data"])
    op.create_table(
        "message_prices",
        sa.Column("wamid", sa.String(length=255), nullable=False),
        sa.Column("phone_number_id", sa.String(length=64), nullable=False),
        sa.Column("pricing_model", sa.String(length=64), nullable=True),
        sa.Column("type", sa.String(length=64), nullable=True),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column("billable", sa.Boolean(), nullable=True),
        sa.Column("charged", sa.Boolean(), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("wamid", name=op.f("pk_message_prices")),
    )
    op.create_index(op.f("ix_message_prices_at_us"), "message_prices", ["at_us"])
    op.create_table(
        "templates",
        sa.Column("template_id", sa.String(length=64), nullable=False),
        sa.Column("waba_id", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("language", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("status_at_us", sa.BigInteger(), nullable=True),
        sa.Column("quality", sa.String(length=64), nullable=True),
        sa.Column("quality_at_us", sa.BigInteger(), nullable=True),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column("category_at_us", sa.BigInteger(), nullable=True),
        sa.Column("updated_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("template_id", name=op.f("pk_templates")),
    )
    op.create_index(op.f("ix_templates_name_language"), "templates", ["name", "language"])


def downgrade() -> None:
    op.drop_index(op.f("ix_templates_name_language"), table_name="templates")
    op.drop_table("templates")
    op.drop_index(op.f("ix_message_prices_at_us"), table_name="message_prices")
    op.drop_table("message_prices")
    op.drop_index(op.f("ix_statuses_callback_data"), table_name="statuses")
    with op.batch_alter_table("statuses") as batch:
        batch.drop_column("callback_data")
