"""The tables of broadcasts (``api.broadcasts``): a broadcast, its recipients, the pace each
number is fed at, and the users who opted out. Migration 0006 creates them; they share the
api's ``metadata`` (``db.tables``) so one schema describes the database.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Float, Index, Integer, String, Table, Text

from hiker.api.db.tables import metadata

broadcasts = Table(
    "broadcasts",
    metadata,
    # A digest of the Idempotency-Key: a repeated request is answered with the same id.
    Column("id", String(32), primary_key=True),
    Column("idempotency_key", String(255), nullable=False, unique=True),
    # A digest of the request body: the same key with another body is refused.
    Column("request_hash", String(64), nullable=False),
    Column("phone_number_id", String(64), nullable=False),
    Column("name", String(255), nullable=False),
    # The template action as the rules file writes it; each recipient adds body parameters.
    Column("template", JSON, nullable=False),
    # The sender's kind for its sends: "broadcast", or "marketing" (Marketing Messages API).
    Column("kind", String(16), nullable=False),
    # running, paused, cancelled, done (every recipient handed to the sender or skipped).
    Column("state", String(16), nullable=False),
    Column("start_at_us", BigInteger, nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
    Column("total", Integer, nullable=False),
    Index(None, "state", "start_at_us"),
)

# One row per (broadcast, recipient): its send id is ``broadcast:<id>:<seq>`` (the sender's
# idempotency key and the send's ``biz_opaque_callback_data``), so it is not stored.
broadcast_recipients = Table(
    "broadcast_recipients",
    metadata,
    Column("broadcast_id", String(32), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("to", String(160), nullable=False),
    # The template's body parameters for this user, a JSON list of strings (or NULL).
    Column("parameters", Text, nullable=True),
    # queued, sending (handed to the sender), accepted (Graph took it), sent, delivered, read,
    # failed, parked, skipped (opted out), cancelled.
    Column("status", String(16), nullable=False),
    # Meta's error code of a failed or parked send.
    Column("error_code", Integer, nullable=True),
    # When it was handed to the sender: until Graph answers, it counts as in flight.
    Column("published_at_us", BigInteger, nullable=True),
    Index(None, "broadcast_id", "status", "seq"),
)
# Users handed to the sender per minute, all broadcasts and numbers together: the rolling
# 24-hour messaging limit sums the last 1,440 rows instead of counting recipients.
broadcast_reach = Table(
    "broadcast_reach",
    metadata,
    # Minutes since the epoch.
    Column("minute", BigInteger, primary_key=True, autoincrement=False),
    Column("users", Integer, nullable=False),
)

# How far each number's broadcast allowance has been used (a GCRA's theoretical time):
# replicas taking turns feed a number at its share of the rate, not each at the whole share.
broadcast_pacing = Table(
    "broadcast_pacing",
    metadata,
    Column("phone_number_id", String(64), primary_key=True),
    Column("fed_until", Float, nullable=False),
)

# Users who answered with an opt-out word: every later broadcast from the number skips them.
opt_outs = Table(
    "opt_outs",
    metadata,
    Column("phone_number_id", String(64), primary_key=True),
    Column("user", String(160), primary_key=True),
    Column("word", String(64), nullable=False),
    Column("at_us", BigInteger, nullable=False),
    Index(None, "phone_number_id", "at_us"),
)
