"""``hiker conversation``: timers, claims, the rules, the bot or responder and its deadline."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    model_validator,
)

from hiker.core.settings.ai import AISettings
from hiker.core.settings.graph import MediaSettings

# The share of the claim lease a responder may take when no timeout of its own is set: what is
# left covers saving and publishing its answer before another worker may take the message.
RESPONDER_SHARE_OF_LEASE = 2 / 3


class ConversationSettings(MediaSettings, AISettings):
    metrics_port: int = Field(default=9102, ge=1, le=65535)
    idle_timeout_seconds: float = Field(default=600.0, gt=0)
    followup_text: str = Field(default="are you there", min_length=1)
    # Meta retries an unacknowledged webhook for up to 7 days, so a wamid may reappear that late.
    dedupe_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    # How long a claim on a message may stay unconfirmed before another worker may take it over.
    claim_lease_seconds: float = Field(default=30.0, gt=0)
    prefetch: int = Field(default=64, ge=1, le=10_000)
    # Replies and per-number follow-ups from a YAML file (see conversation/rulesfile.py).
    rules_file: Path | None = None
    rules_reload_seconds: float = Field(default=2.0, gt=0)
    # ``package.module:factory`` building a custom responder (see conversation/responder.py).
    responder: str | None = Field(default=None, pattern=r"^[\w.]+:\w+$")
    # How long a responder may take to answer; past it the message is answered again later.
    # Less than the claim lease, or another worker could take the message over meanwhile.
    # Unset: two thirds of the lease (20 s by default; see ``responder_deadline_seconds``).
    responder_timeout_seconds: float | None = Field(default=None, gt=0)
    # ``package.module:attribute`` naming a ``hiker.bot.Bot`` (or a factory returning one).
    bot: str | None = Field(default=None, pattern=r"^[\w.]+:\w+$")
    # A directory put first on the import path before HIKER_BOT (or HIKER_RESPONDER) is loaded:
    # a bot's code mounted into the image rather than built into it.
    bot_path: Path | None = None
    # Mark every new message read (blue ticks) before answering, and with "typing..." shown.
    read_receipts: Literal["off", "read", "typing"] = "off"
    # How long a quiet conversation's state and history are kept (every message renews it).
    conversation_ttl_seconds: float = Field(default=30 * 24 * 3600, ge=24 * 3600)
    # Messages of each conversation kept for ``conversation.history()``, both ways.
    history_length: int = Field(default=50, ge=0, le=1000)
    # How long a person owns a conversation after answering it from the WhatsApp Business app
    # (a coexistence number's echo): the bot stays silent meanwhile (docs/handoff.md).
    handoff_minutes: float = Field(default=30.0, gt=0, le=24 * 60)

    @model_validator(mode="after")
    def _responder_within_lease(self) -> ConversationSettings:
        timeout = self.responder_timeout_seconds
        if timeout is not None and timeout >= self.claim_lease_seconds:
            raise ValueError(
                "HIKER_RESPONDER_TIMEOUT_SECONDS must be less than HIKER_CLAIM_LEASE_SECONDS "
                "(a responder still running when its claim runs out could answer twice)"
            )
        return self

    @property
    def responder_deadline_seconds(self) -> float:
        """How long a responder may take: ``responder_timeout_seconds``, or two thirds of the
        claim lease (what is left covers saving and publishing the answer)."""
        if self.responder_timeout_seconds is not None:
            return self.responder_timeout_seconds
        return self.claim_lease_seconds * RESPONDER_SHARE_OF_LEASE

    @model_validator(mode="after")
    def _one_answerer(self) -> ConversationSettings:
        if self.responder and self.bot:
            raise ValueError("HIKER_RESPONDER and HIKER_BOT are both set: set one of them")
        return self
