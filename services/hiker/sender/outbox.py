"""What the sender publishes: sends to retry later (a TTL queue per delay) and parked sends."""

from __future__ import annotations

from typing import Any

from hiker.core import topology
from hiker.core.broker import Broker
from hiker.core.contracts import Contract, MessageSent, SendMessage, SendParked
from hiker.core.parked_headers import ParkedHeaders
from hiker.core.publisher import Bundler, Destination


class SenderOutbox:
    def __init__(self, broker: Broker, outcomes: Bundler) -> None:
        self._broker = broker
        # Outcomes wait for company: nobody waits on them, and they are one per action sent.
        self._outcomes = outcomes

    async def sent(self, event: MessageSent) -> None:
        """Tell whoever records sends (``hiker api``) that Graph accepted a message."""
        await self._outcomes.publish(
            _outcome(f"{topology.RK_SENT_PREFIX}.{event.kind}", event),
            event,
            correlation_id=event.correlation_id,
        )

    async def parked_event(self, event: SendParked) -> None:
        """Tell whoever records sends that one was parked."""
        await self._outcomes.publish(
            _outcome(f"{topology.RK_PARKED_PREFIX}.{event.kind}", event),
            event,
            correlation_id=event.correlation_id,
        )

    async def retry(
        self,
        command: SendMessage,
        attempt: int,
        delay_ms: int,
        *,
        paced_until_us: int | None = None,
    ) -> None:
        """``command`` waits ``delay_ms`` in its retry queue, then returns to the outbox as
        attempt ``attempt`` (with the pacing slot it reserved already, if any); returns once
        the broker confirmed it."""
        queue = await self._broker.declare_queue(topology.sender_retry_queue(delay_ms))
        headers: dict[str, Any] = {topology.HEADER_ATTEMPT: attempt}
        if paced_until_us is not None:
            headers[topology.HEADER_PACED_UNTIL] = paced_until_us
        await self._publish("", queue.name, command, headers, delay_ms)

    async def park(self, command: SendMessage, why: ParkedHeaders) -> None:
        """``command`` goes to ``hiker.sender.parked`` for a person, ``why`` in its headers."""
        await self._publish(topology.DEAD_EXCHANGE, topology.RK_PARKED, command, why.to_headers())

    async def _publish(
        self,
        exchange: str,
        routing_key: str,
        command: SendMessage,
        headers: dict[str, Any],
        expiration_ms: int | None = None,
    ) -> None:
        await self._broker.publish_contract(
            exchange,
            routing_key,
            command,
            message_id=command.idempotency_key,
            correlation_id=command.correlation_id,
            headers=headers,
            expiration_ms=expiration_ms,
        )


def _outcome(routing_key: str, event: Contract) -> Destination:
    return Destination(topology.OUTCOMES_EXCHANGE, routing_key, event.type_name(), mandatory=False)
