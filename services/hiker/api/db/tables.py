"""The tables of the api's database. Alembic's migrations (``hiker.api.migrations``) create and
change them; this module is what the queries are written against and what a new migration is
compared with.

Times are integers, microseconds since the epoch (``*_at_us``): exact, the same in SQLite and
PostgreSQL, and a sort key a cursor can carry as it is.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# Constraint names Alembic can find again on every database (SQLite names none by itself).
NAMING_CONVENTION: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# SQLite gives a rowid (and so an increasing id) only to a column declared exactly INTEGER.
_ID = BigInteger().with_variant(Integer(), "sqlite")

messages = Table(
    "messages",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("phone_number_id", String(64), nullable=False),
    # The conversation's user: who wrote (inbound) or who it was sent to (outbound); a phone
    # number or a business-scoped user id (``CC.`` or ``CC.ENT.`` and up to 128 characters).
    Column("user", String(160), nullable=False),
    Column("direction", String(3), nullable=False),
    # Meta's message id: the inbound message's, or the one Graph gave a send.
    Column("wamid", String(255), nullable=True, unique=True),
    # Outbound: the sender's key for this one action (``SendMessage.action_key``).
    Column("idempotency_key", String(512), nullable=True, unique=True),
    # Outbound through ``POST /v1/messages``: the id that request was answered with, and a
    # digest of what it asked for (the same key with another request is refused).
    Column("send_id", String(64), nullable=True),
    Column("request_hash", String(64), nullable=True),
    Column("kind", String(16), nullable=True),
    Column("type", String(32), nullable=False),
    Column("text", Text, nullable=True),
    Column("at_us", BigInteger, nullable=False),
    # Why the send was parked, while it is (cleared when a replay of it is sent).
    Column("parked", JSON, nullable=True),
    Index(None, "phone_number_id", "user", "at_us", "id"),
)

# Every status Meta reported, kept apart from its message: a status may arrive before the
# message it is about is recorded, and is attached when the history is read.
statuses = Table(
    "statuses",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("wamid", String(255), nullable=False),
    Column("status", String(32), nullable=False),
    Column("at_us", BigInteger, nullable=False),
    Column("error", JSON, nullable=True),
    # What the send put in ``biz_opaque_callback_data`` (its key): joins a status to a send
    # whose Graph id was not recorded yet.
    Column("callback_data", String(512), nullable=True, index=True),
    UniqueConstraint("wamid", "status"),
)

# What Meta charges for a message, from the first status that carried ``pricing`` (Meta repeats
# it on sent, delivered and read): one row per message, so that each is counted once.
message_prices = Table(
    "message_prices",
    metadata,
    Column("wamid", String(255), primary_key=True),
    Column("phone_number_id", String(64), nullable=False),
    Column("pricing_model", String(64), nullable=True),
    Column("type", String(64), nullable=True),
    Column("category", String(64), nullable=True),
    Column("billable", Boolean, nullable=True),
    # Whether Meta charges for it (``type`` regular, or ``billable`` without a type).
    Column("charged", Boolean, nullable=False),
    Column("at_us", BigInteger, nullable=False, index=True),
)

# Each message template as Meta's template webhooks last described it. Each of status, quality
# and category keeps the time Meta gave it, so a webhook that arrives late changes nothing newer.
templates = Table(
    "templates",
    metadata,
    Column("template_id", String(64), primary_key=True),
    # The WhatsApp Business Account (the webhook's ``entry.id``).
    Column("waba_id", String(64), nullable=True),
    Column("name", String(512), nullable=False),
    Column("language", String(32), nullable=False),
    Column("status", String(64), nullable=True),
    Column("reason", Text, nullable=True),
    Column("status_at_us", BigInteger, nullable=True),
    Column("quality", String(64), nullable=True),
    Column("quality_at_us", BigInteger, nullable=True),
    Column("category", String(64), nullable=True),
    Column("category_at_us", BigInteger, nullable=True),
    Column("updated_at_us", BigInteger, nullable=False),
    Index(None, "name", "language"),
)

conversations = Table(
    "conversations",
    metadata,
    Column("phone_number_id", String(64), primary_key=True),
    Column("user", String(160), primary_key=True),
    Column("name", String(255), nullable=True),
    Column("last_at_us", BigInteger, nullable=False),
    Column("last_direction", String(3), nullable=False),
    Column("last_type", String(32), nullable=False),
    Column("last_text", Text, nullable=True),
    Column("message_count", Integer, nullable=False),
    # The user's ids as their latest message named them (``user`` is the BSUID when Meta sent
    # one): the business-scoped user id, the phone number, the WhatsApp username.
    Column("user_id", String(160), nullable=True),
    Column("wa_id", String(64), nullable=True),
    Column("username", String(255), nullable=True),
    Index(None, "last_at_us", "phone_number_id", "user"),
    Index(None, "phone_number_id", "wa_id"),
)

# The keys of ``POST /v1/messages`` (Stripe's model): a key and a hash of its request are
# recorded before the command is published, and the key is marked once it is. A request in
# flight holds the key until ``lease_until_us``; one that crashed leaves it to expire, and a
# retry of the same request then takes it over (``holder`` changes, ``attempts`` counts).
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    # The sender's key for the command (``api:<send_id>``).
    Column("idempotency_key", String(512), primary_key=True),
    Column("send_id", String(64), nullable=False),
    Column("request_hash", String(64), nullable=False),
    # A random id of the attempt holding the key (or the last that did).
    Column("holder", String(32), nullable=False),
    Column("lease_until_us", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
    # Set once the broker confirmed the command: a repeat publishes nothing after that.
    Column("published_at_us", BigInteger, nullable=True),
)

# Errors Meta reported for a number as a whole (``value.errors``), not tied to a message.
webhook_errors = Table(
    "webhook_errors",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    # "" when Meta named no number: a unique key must not hold NULL (NULLs never collide).
    Column("phone_number_id", String(64), nullable=False),
    Column("code", Integer, nullable=False),
    Column("title", Text, nullable=True),
    Column("message", Text, nullable=True),
    Column("at_us", BigInteger, nullable=False),
    UniqueConstraint("phone_number_id", "code", "at_us"),
)

# Inbound media the api kept (HIKER_MEDIA_STORE), by Meta's media id: the bytes are in the
# media store under their sha256, so history keeps them after Meta's id expired.
media = Table(
    "media",
    metadata,
    Column("media_id", String(128), primary_key=True),
    # The message that carried it, and the number it came to (whose tokens may read it).
    Column("wamid", String(255), nullable=False, index=True),
    Column("phone_number_id", String(64), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("mime_type", String(255), nullable=True),
    Column("size", BigInteger, nullable=False),
    Column("stored_at_us", BigInteger, nullable=False, index=True),
)
