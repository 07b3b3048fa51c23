"""Why an event was parked: the AMQP headers ``hiker events`` writes and ``hiker parked --events``
reads. Pure.

The event stays the message body, byte for byte, so a replay sends what was parked. An event
the broker dead-lettered itself (its endpoint's queue overflowed, or it kept failing to be
handled) has none of these headers: its ``x-death`` then says which queue and why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hiker.core import topology


@dataclass(frozen=True)
class ParkedEvent:
    endpoint: str  # the endpoint's name (core.endpoints), "" when unknown
    reason: str  # "permanent", "retries_exhausted", or the broker's ("maxlen", ...)
    status: str  # the last answer: "410", "503", "timeout", ..., or "none"
    attempt: int
    parked_at: float | None

    def to_headers(self) -> dict[str, Any]:
        return {
            topology.HEADER_ENDPOINT: self.endpoint,
            topology.HEADER_PARKED_REASON: self.reason,
            topology.HEADER_ENDPOINT_STATUS: self.status,
            topology.HEADER_ATTEMPT: self.attempt,
            # A string: AMQP tables carry a float in single precision, too coarse for a time.
            **(
                {topology.HEADER_PARKED_AT: f"{self.parked_at:.3f}"}
                if self.parked_at is not None
                else {}
            ),
        }

    @classmethod
    def from_headers(cls, headers: Mapping[str, Any]) -> ParkedEvent:
        """Never fails: what is missing gets a placeholder, or comes from ``x-death``."""
        death = _first_death(headers)
        endpoint = _text(headers.get(topology.HEADER_ENDPOINT))
        if endpoint is None and death is not None:
            queue = _text(death.get("queue")) or ""
            if queue.startswith(topology.EVENTS_DELIVER_QUEUE_PREFIX):
                endpoint = queue.removeprefix(topology.EVENTS_DELIVER_QUEUE_PREFIX)
        reason = _text(headers.get(topology.HEADER_PARKED_REASON))
        if reason is None and death is not None:
            reason = _text(death.get("reason"))
        attempt = headers.get(topology.HEADER_ATTEMPT)
        return cls(
            endpoint=endpoint or "",
            reason=reason or "unknown",
            status=_text(headers.get(topology.HEADER_ENDPOINT_STATUS)) or "none",
            attempt=attempt if type(attempt) is int and attempt >= 1 else 1,
            parked_at=_seconds(headers.get(topology.HEADER_PARKED_AT)),
        )


def _first_death(headers: Mapping[str, Any]) -> Mapping[str, Any] | None:
    deaths = headers.get("x-death")
    if isinstance(deaths, list | tuple) and deaths and isinstance(deaths[0], Mapping):
        return deaths[0]
    return None


def _text(raw: object) -> str | None:
    if raw is None:
        return None
    return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)


def _seconds(raw: object) -> float | None:
    text = _text(raw)
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None
