"""What ``hiker events`` publishes: stamped events to each endpoint's queue, events to try again
later (a TTL queue per endpoint and delay), and parked events."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from hiker.core import topology
from hiker.core.broker import Broker
from hiker.events.model import BackendEvent
from hiker.events.parking import ParkedEvent


class EventsOutbox:
    """Every message an endpoint's queue gets holds one event, never a bundle: what the broker
    itself dead-letters there (an overflow, a delivery limit) stays one event that
    ``hiker parked --events`` can show and replay, and its AMQP message id is the event's."""

    def __init__(self, broker: Broker, endpoints: Sequence[str]) -> None:
        self._broker = broker
        self._endpoints = tuple(endpoints)

    async def forward(self, event: BackendEvent) -> None:
        """A copy of ``event`` to every endpoint's queue; returns once the broker took them all
        (one refused fails the whole: the source is then handled again, and a copy that did
        arrive twice carries the same id)."""
        await asyncio.gather(
            *(
                self._broker.publish_contract(
                    topology.EVENTS_EXCHANGE, endpoint, event, message_id=event.id
                )
                for endpoint in self._endpoints
            )
        )

    async def retry(
        self,
        endpoint: str,
        event: BackendEvent,
        *,
        attempt: int,
        first_attempt_at: float,
        delay_ms: int,
    ) -> None:
        """``event`` waits ``delay_ms``, then returns to ``endpoint``'s queue as ``attempt``."""
        queue = await self._broker.declare_queue(topology.events_retry_queue(endpoint, delay_ms))
        await self._broker.publish_contract(
            "",
            queue.name,
            event,
            message_id=event.id,
            headers={
                topology.HEADER_ATTEMPT: attempt,
                topology.HEADER_FIRST_ATTEMPT_AT: f"{first_attempt_at:.3f}",
            },
            expiration_ms=delay_ms,
        )

    async def park(self, event: BackendEvent, why: ParkedEvent) -> None:
        """``event`` goes to ``hiker.events.parked`` for a person, ``why`` in its headers."""
        await self._broker.publish_contract(
            topology.DEAD_EXCHANGE,
            topology.RK_EVENTS_PARKED,
            event,
            message_id=event.id,
            headers=why.to_headers(),
        )
