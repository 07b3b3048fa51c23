"""What an endpoint's answer means for an event, and how long to wait before trying again. Pure.

- 2xx: delivered.
- 5xx, 408, 429, a timeout, a refused or broken connection: tried again later, honouring
  Retry-After, until the retry window (``HIKER_EVENTS_RETRY_HOURS``, counted from the first
  attempt) would be over; then parked ("retries_exhausted").
- any other answer (4xx: 400, 401, 404, 410...): the endpoint says it will never take this
  event; parked at once ("permanent").

Delays double from 1 s to 15 min, without jitter: an endpoint's retries come back to its own
queue, whose consumer sends at most ``HIKER_EVENTS_CONCURRENCY`` at once, so a recovering
endpoint never sees a thundering herd, and exact doublings keep the wait queues (one per
delay: RabbitMQ expires only at a queue's head) to about a dozen per endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final

from hiker.core.delays import snap_ms

FIRST_DELAY_SECONDS: Final = 1.0
MAX_DELAY_SECONDS: Final = 900.0

# Parking reasons, as ``hiker parked --events`` and the metrics show them.
PERMANENT: Final = "permanent"
RETRIES_EXHAUSTED: Final = "retries_exhausted"


class Verdict(Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    PARK = "park"


@dataclass(frozen=True)
class Answer:
    """How a POST ended: an HTTP status, or no answer at all (``failure`` says why)."""

    http_status: int | None
    failure: str | None = None  # "timeout", "connection_error"
    retry_after_seconds: float | None = None

    @property
    def label(self) -> str:
        """For metrics and parked headers: ``"503"``, ``"timeout"``..."""
        if self.http_status is not None:
            return str(self.http_status)
        return self.failure or "none"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    delay_ms: int = 0  # RETRY: how long to wait
    reason: str = ""  # PARK: why


def verdict_of(answer: Answer) -> Verdict:
    status = answer.http_status
    if status is None:
        return Verdict.RETRY
    if 200 <= status < 300:
        return Verdict.DELIVERED
    if status >= 500 or status in (408, 429):
        return Verdict.RETRY
    return Verdict.PARK


def retry_delay_ms(attempt: int, retry_after_seconds: float | None) -> int:
    """The wait after attempt ``attempt`` failed: doubling, at least Retry-After (capped)."""
    base = min(MAX_DELAY_SECONDS, FIRST_DELAY_SECONDS * 2 ** max(0, attempt - 1))
    if retry_after_seconds is not None and retry_after_seconds > base:
        return snap_ms(min(retry_after_seconds, MAX_DELAY_SECONDS), to="up")
    return snap_ms(base, to="up")


def decide(
    answer: Answer, *, attempt: int, first_attempt_at: float, now: float, window_seconds: float
) -> Decision:
    """What to do with an event whose attempt ``attempt`` got ``answer``."""
    verdict = verdict_of(answer)
    if verdict is Verdict.DELIVERED:
        return Decision(verdict)
    if verdict is Verdict.PARK:
        return Decision(verdict, reason=PERMANENT)
    delay_ms = retry_delay_ms(attempt, answer.retry_after_seconds)
    if now + delay_ms / 1000 > first_attempt_at + window_seconds:
        return Decision(Verdict.PARK, reason=RETRIES_EXHAUSTED)
    return Decision(Verdict.RETRY, delay_ms=delay_ms)


def retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the delta form; an HTTP date counts as absent)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
