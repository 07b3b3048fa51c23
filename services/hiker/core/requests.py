"""What a bot or a rule asks of Hiker beside the messages of its reply: to be called back later
(``Remind``) or to hand the conversation to a person (``Handoff``). Neither is sent to Graph;
conversation carries each out with the reply, in the same claim.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# A handoff lasts at most a day (``core.ownership.MAX_HANDOFF_SECONDS``), its reason is short.
HANDOFF_MAX_MINUTES = 24 * 60
HANDOFF_REASON_MAX = 200
# The longest a reminder may wait: beyond a few weeks, a user is better asked by a template.
REMIND_MAX_SECONDS = 30 * 24 * 3600


class _Request(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Remind(_Request):
    """Not a message: ask to be called back (``on_reminder``) in ``after_seconds``, unless the
    user writes first (``keep``: even then). Durable: it waits in the broker, not in memory."""

    type: Literal["remind"] = "remind"
    after_seconds: float = Field(ge=1, le=REMIND_MAX_SECONDS)
    # Names the reminder (several may wait at once); handed back with ``data``.
    key: str = Field(min_length=1, max_length=100, pattern=r"^[\w.:-]+$")
    data: dict[str, Any] = Field(default_factory=dict)
    keep: bool = False


class Handoff(_Request):
    """Not a message: hand the conversation to a person for ``minutes`` (after the reply's
    messages are sent). Until then, or until given back, the bot neither answers nor follows
    up; a person answers through ``hiker api`` (docs/handoff.md)."""

    type: Literal["handoff"] = "handoff"
    minutes: float = Field(gt=0, le=HANDOFF_MAX_MINUTES)
    reason: str = Field(default="action", min_length=1, max_length=HANDOFF_REASON_MAX)
