"""What conversation publishes: send commands for the sender, and idle timers to wait queues.

Both go through the bundling publisher: the replies and timers of messages handled together
leave as one message per destination, each caller still awaiting its own confirm.
"""

from __future__ import annotations

from hiker.core import topology
from hiker.core.broker import Broker
from hiker.core.contracts import AITurnScheduled, OwnerChanged, SendMessage, TimerScheduled
from hiker.core.ownership import owner_destination
from hiker.core.publisher import Bundler, Destination

_SEND = Destination(topology.COMMANDS_EXCHANGE, topology.RK_SEND, SendMessage.type_name())


class ConversationOutbox:
    def __init__(self, broker: Broker, bundler: Bundler) -> None:
        self._broker = broker
        self._bundler = bundler
        self._timer_destinations: dict[int, Destination] = {}
        self._ai_destinations: dict[int, Destination] = {}

    async def send(self, command: SendMessage) -> None:
        """Hand ``command`` to the sender (``hiker.sender.outbox``); return once confirmed."""
        await self._bundler.publish(
            _SEND,
            command,
            message_id=command.idempotency_key,
            correlation_id=command.correlation_id,
        )

    async def announce(self, change: OwnerChanged) -> None:
        """Tell ``hiker events`` (when installed) that a conversation changed hands."""
        await self._bundler.publish(owner_destination(change.owner), change)

    async def schedule(self, timer: TimerScheduled, delay_seconds: float) -> None:
        """Start ``timer``: it waits ``delay_seconds`` in the wait queue of that delay."""
        await self._bundler.publish(
            await self._timer_destination(topology.delay_ms(delay_seconds)),
            timer,
            correlation_id=timer.wamid,
        )

    async def schedule_ai(self, turn: AITurnScheduled, delay_seconds: float) -> None:
        """Set ``turn`` due in ``delay_seconds``: it waits in the AI wait queue of that delay."""
        delay_ms = topology.delay_ms(delay_seconds)
        destination = self._ai_destinations.get(delay_ms)
        if destination is None:
            queue = await self._broker.declare_queue(topology.ai_wait_queue(delay_ms))
            destination = Destination(
                "", queue.name, AITurnScheduled.type_name(), expiration_ms=delay_ms
            )
            self._ai_destinations[delay_ms] = destination
        await self._bundler.publish(destination, turn, correlation_id=turn.wamid)

    async def _timer_destination(self, delay_ms: int) -> Destination:
        destination = self._timer_destinations.get(delay_ms)
        if destination is None:
            # One wait queue per delay, declared once per process on first use.
            queue = await self._broker.declare_queue(topology.timer_wait_queue(delay_ms))
            destination = Destination(
                "", queue.name, TimerScheduled.type_name(), expiration_ms=delay_ms
            )
            self._timer_destinations[delay_ms] = destination
        return destination
