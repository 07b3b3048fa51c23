"""Handing a conversation to a person and back over HTTP (``POST`` / ``DELETE``
``/v1/conversations/{phone_number_id}/{user}/handoff``): how an agent tool (a helpdesk, a CRM)
silences the bot while someone answers through ``POST /v1/messages``.

The ownership is written to the conversation's Redis state (``core.ownership``), where
conversation reads it with every message; the database is not involved.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any, Final, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from hiker.core.ownership import MAX_HANDOFF_SECONDS, OwnershipStore

log = logging.getLogger(__name__)

OWNERSHIP = web.AppKey("api_ownership", OwnershipStore)
# The api's clock (tests move it); wall time: ``until`` is shared with other processes.
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("api_clock")

PATH: Final = "/v1/conversations/{phone_number_id}/{user}/handoff"
MAX_MINUTES: Final = MAX_HANDOFF_SECONDS // 60
REASON_MAX: Final = 200
# What a handoff by the api is counted as (``hiker_handoffs_total{reason}``).
WAY_IN: Final = "api"


class HandoffInvalid(Exception):
    """The body does not say how long, or why, in a form we take (422, the field named)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class HandoffRequest(BaseModel):
    """How long a person owns the conversation, and why (shown in the conversation's items)."""

    minutes: float = Field(gt=0, le=MAX_MINUTES)
    reason: str = Field(default="api", min_length=1, max_length=REASON_MAX)


class Owner(BaseModel):
    """Who answers the conversation now."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    owner: Literal["human", "bot"]
    until: str | None = Field(
        default=None, description="ISO 8601, UTC: when the person's ownership ends by itself"
    )


def parse_handoff(body: Any) -> HandoffRequest:
    """The request, or HandoffInvalid naming the first field at fault."""
    if not isinstance(body, dict):
        raise HandoffInvalid("body", "must be a JSON object")
    unknown = sorted(set(body) - {"minutes", "reason"})
    if unknown:
        raise HandoffInvalid(str(unknown[0]), "not a field of a handoff (minutes, reason)")
    minutes = body.get("minutes")
    # bool is an int to Python; JSON's true is no number of minutes.
    if isinstance(minutes, bool) or not isinstance(minutes, int | float):
        raise HandoffInvalid("minutes", "required: a number of minutes")
    if not (math.isfinite(minutes) and 0 < minutes <= MAX_MINUTES):
        raise HandoffInvalid("minutes", f"must be more than 0 and at most {MAX_MINUTES}")
    reason = body.get("reason", WAY_IN)
    if not isinstance(reason, str) or not (0 < len(reason) <= REASON_MAX and reason.isprintable()):
        raise HandoffInvalid("reason", f"1 to {REASON_MAX} printable characters")
    return HandoffRequest(minutes=minutes, reason=reason)


def iso_seconds(at: float) -> str:
    """Epoch seconds → ISO 8601 in UTC, to the millisecond."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}Z"
