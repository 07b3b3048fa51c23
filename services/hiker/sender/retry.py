"""What to do with a Graph API answer, and how long to wait before trying again. Pure.

Retries wait in TTL queues named by their delay. RabbitMQ expires messages only at a queue's
head, so each queue must hold one delay value: jittered delays are snapped to the ladder of
``core.delays`` (steps of ~19 %), which keeps the jitter and bounds the number of queues.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final

from hiker.core.delays import snap_ms

# Graph error codes that say "not now" rather than "never": throttling and temporary outages.
TRANSIENT_CODES: Final = frozenset(
    {
        1,  # API unknown (temporary)
        2,  # API service (temporary)
        4,  # application request limit reached
        80007,  # WhatsApp Business Account rate limit
        130429,  # Cloud API throughput reached
        131016,  # service unavailable
        131056,  # pair rate limit: too many messages to one user
        131057,  # account in maintenance mode
        133004,  # server temporarily unavailable
    }
)

# An authentication template sent to a business-scoped user id: Meta delivers those to phone
# numbers only, so no retry helps (parked, as every code not in ``TRANSIENT_CODES``).
AUTH_TEMPLATE_TO_BSUID: Final = 131062

# A template Meta paused (quality too low; it comes back by itself, hours later) or disabled
# (for good): no retry helps a send of it, so it is parked at once with its own reason, for a
# person to send it again once the template is approved again (Meta's error codes page).
TEMPLATE_PAUSED: Final = 132015
TEMPLATE_DISABLED: Final = 132016
PARK_REASONS: Final = {TEMPLATE_PAUSED: "template_paused", TEMPLATE_DISABLED: "template_disabled"}

# The failure of a send for a phone number with no access token configured.
NO_TOKEN: Final = "no_token"
# The failure of a send whose phone number id is not digits: refused before calling Graph.
BAD_PHONE_NUMBER_ID: Final = "bad_phone_number_id"

BASE_DELAY_SECONDS: Final = 1.0
MAX_DELAY_SECONDS: Final = 900.0


class Verdict(Enum):
    SENT = "sent"
    RETRY = "retry"
    PARK = "park"


@dataclass(frozen=True)
class GraphOutcome:
    """A Graph call's result, as far as deciding goes."""

    http_status: int | None  # None: no HTTP answer (timeout, connection refused)
    error_code: int | None = None
    message_id: str | None = None
    retry_after_seconds: float | None = None
    failure: str | None = None  # "timeout" / "connection_error" when there was no answer
    # Accepted without a message id of its own ({"success": true}: a read receipt).
    accepted: bool = False

    @property
    def status_label(self) -> str:
        return str(self.http_status) if self.http_status is not None else (self.failure or "none")

    @property
    def code_label(self) -> str:
        return str(self.error_code) if self.error_code is not None else "none"


def verdict_of(outcome: GraphOutcome) -> Verdict:
    status = outcome.http_status
    if status is not None and 200 <= status < 300 and (outcome.message_id or outcome.accepted):
        return Verdict.SENT
    if outcome.failure in (NO_TOKEN, BAD_PHONE_NUMBER_ID):
        return Verdict.PARK
    if status is None or status == 429 or status >= 500:
        return Verdict.RETRY
    if outcome.error_code in TRANSIENT_CODES:
        return Verdict.RETRY
    return Verdict.PARK


def decide(outcome: GraphOutcome, attempt: int, max_attempts: int) -> Verdict:
    """``verdict_of``, except that a retry past ``max_attempts`` parks the message."""
    verdict = verdict_of(outcome)
    if verdict is Verdict.RETRY and attempt >= max_attempts:
        return Verdict.PARK
    return verdict


def park_reason(outcome: GraphOutcome, attempt: int, max_attempts: int) -> str:
    """Why a send Graph answered with ``outcome`` is parked: the template's state where that is
    the cause, else ``permanent`` (Graph said never) or ``retries_exhausted``."""
    if outcome.error_code in PARK_REASONS:
        return PARK_REASONS[outcome.error_code]
    return "permanent" if attempt < max_attempts else "retries_exhausted"


def ladder_ms(delay_seconds: float, *, round_up: bool = False) -> int:
    """Snap a retry's delay (at most ``MAX_DELAY_SECONDS``) onto the wait-queue ladder
    (``core.delays``); ``round_up`` never waits less."""
    return snap_ms(min(delay_seconds, MAX_DELAY_SECONDS), to="up" if round_up else "nearest")


def retry_delay_ms(attempt: int, random_unit: float, retry_after_seconds: float | None) -> int:
    """Delay before attempt ``attempt + 1``: exponential, "equal jitter", at least Retry-After.

    ``random_unit`` is uniform in [0, 1): the caller owns randomness so this stays testable.
    """
    base = min(MAX_DELAY_SECONDS, BASE_DELAY_SECONDS * 2 ** max(0, attempt - 1))
    jittered = base / 2 + base / 2 * random_unit
    if retry_after_seconds is not None and retry_after_seconds > jittered:
        return ladder_ms(retry_after_seconds, round_up=True)
    return ladder_ms(jittered)
