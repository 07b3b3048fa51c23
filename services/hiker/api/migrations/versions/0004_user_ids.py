"""A conversation's user ids: the business-scoped user id, the phone number, the username.

Since 2026 Meta names a user by a business-scoped user id (BSUID), and by a phone number only
when the user shares it; a conversation is keyed by the BSUID when there is one. Kept as the
latest message named them, so that a conversation can be found, and shown, by either id.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


# A BSUID is a country code, a period and up to 128 letters and digits (``ENT.`` between them
# for a parent one): longer than the 128 characters a user had.
_USER = sa.String(length=160)


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.alter_column("user", type_=_USER, existing_type=sa.String(128), nullable=False)
    with op.batch_alter_table("conversations") as batch:
        batch.alter_column("user", type_=_USER, existing_type=sa.String(128), nullable=False)
        batch.add_column(sa.Column("user_id", sa.String(length=160), nullable=True))
        batch.add_column(sa.Column("wa_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("username", sa.String(length=255), nullable=True))
    # Conversations keyed by a phone number until now are found by it.
    op.execute('UPDATE conversations SET wa_id = "user" WHERE "user" NOT LIKE \'%.%\'')
    op.create_index(
        op.f("ix_conversations_phone_number_id_wa_id"),
        "conversations",
        ["phone_number_id", "wa_id"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_conversations_phone_number_id_wa_id"), table_name="conversations")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("username")
        batch.drop_column("wa_id")
        batch.drop_column("user_id")
        batch.alter_column("user", type_=sa.String(128), existing_type=_USER, nullable=False)
    with op.batch_alter_table("messages") as batch:
        batch.alter_column("user", type_=sa.String(128), existing_type=_USER, nullable=False)
