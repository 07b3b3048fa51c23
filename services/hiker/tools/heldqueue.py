"""Queues that hold messages for people (parked sends, poison, inspect): read without loss, replay.

One mechanism under ``hiker parked`` and ``hiker poison``.

Reading: messages are fetched with ``basic.get`` and held unacknowledged until the run ends, then
returned (nack with requeue) in the order they came, so a listing leaves a queue as it found it.
Holding them is what stops the broker from handing the same message out twice in one run. A run
reads at most as many messages as the queue held when it began: messages arriving meanwhile (a
replayed copy whose route leads back to the same queue among them) wait for the next run. A
quorum queue counts every return as a delivery; the queues read here have no delivery limit
(``topology.HELD_FOR_PEOPLE``), so the count grows but nothing is ever dropped or dead-lettered
(a policy adding a delivery limit to them would change that: do not add one).

Replaying: the copy is published through the services' own confirmed publish
(``Broker.publish``), and the held message is acked only once the broker confirmed the copy. A
crash in between leaves both, and the next run publishes the message again: a replay may publish
a message twice, never lose one. Consumers deduplicate by their claims, so a second copy never
becomes a second reply or send.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

import aiormq
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage, AbstractQueue

from hiker.core import topology
from hiker.core.broker import Broker
from hiker.core.broker import connect as connect_broker
from hiker.core.errors import PublishFailed
from hiker.core.observability import redact

_CONNECT_TIMEOUT_SECONDS: Final = 10.0
_PUBLISH_TIMEOUT_SECONDS: Final = 10.0


class ToolError(Exception):
    """The tool could not do its job (broker away, a publish refused); nothing was lost."""


@dataclass(frozen=True)
class Address:
    """Where a replayed message is published: exchange and routing key.

    The default exchange (``""``) routes by queue name to that one queue alone.
    """

    exchange: str
    routing_key: str

    def __str__(self) -> str:
        return f"{self.exchange or '(default exchange)'} / {self.routing_key}"


@dataclass(frozen=True)
class Copy:
    """What a held message is published as when it is replayed."""

    route: Address
    body: bytes
    type_name: str
    message_id: str | None = None
    correlation_id: str | None = None
    headers: Mapping[str, Any] = field(default_factory=dict)


T = TypeVar("T")
# Before an empty basic.get is believed (see ``HeldQueue._get``).
_EMPTY_GET_PAUSES: Final = (0.05, 0.1, 0.2, 0.4)


@dataclass(frozen=True)
class Listing(Generic[T]):
    """What a listing shows of held messages, and how many each queue held when it began."""

    messages: list[T]
    totals: dict[str, int]


async def list_queue(
    amqp_url: str,
    queue: str,
    read: Callable[[AbstractIncomingMessage], T],
    keep: Callable[[T], bool],
    limit: int,
) -> Listing[T]:
    """Up to ``limit`` messages of ``queue`` as ``read`` shows them, those ``keep`` wants, oldest
    first; the queue is left as it was."""
    async with reading(amqp_url, [queue]) as queues:
        held = queues[queue]
        shown: list[T] = []
        async for message in held.messages():
            seen = read(message)
            if keep(seen):
                shown.append(seen)
                if len(shown) >= limit:
                    break
        return Listing(shown, {queue: held.total})


class HeldQueue:
    """One queue read in a run: its messages one at a time, each held until the run ends."""

    def __init__(self, name: str, queue: AbstractQueue | None, total: int) -> None:
        self.name = name
        self.total = total  # messages in the queue when the run began
        self._queue = queue
        # In fetch order (dicts keep it); keyed so that removing one costs the same at any depth.
        self._held: dict[int, AbstractIncomingMessage] = {}

    async def messages(self) -> AsyncIterator[AbstractIncomingMessage]:
        """Up to ``total`` messages, oldest first; each stays held unless ``remove``d."""
        if self._queue is None:
            return
        for _ in range(self.total):
            message = await self._get()
            if message is None:  # another reader holds the rest
                return
            self._held[id(message)] = message
            yield message

    async def _get(self) -> AbstractIncomingMessage | None:
        """The next message; a quorum queue may count one it does not hand out yet (just
        dead-lettered or returned), so an empty answer is asked again a few times."""
        assert self._queue is not None
        for pause in (0.0, *_EMPTY_GET_PAUSES):
            await asyncio.sleep(pause)
            message = await self._queue.get(no_ack=False, fail=False)
            if message is not None:
                return message
        return None

    @property
    def held(self) -> int:
        """Messages fetched and not removed: what goes back at the end of the run."""
        return len(self._held)

    async def remove(self, message: AbstractIncomingMessage) -> None:
        """Take ``message`` off the queue for good (ack)."""
        await message.ack()
        del self._held[id(message)]

    async def release(self) -> None:
        """Return every held message (nack with requeue), in fetch order, so that the queue
        keeps its order for the next reader, and wait until the queue counts them again: a
        quorum queue takes the returns in a moment of its own, and a run started meanwhile
        (the next ``hiker parked list``) would find the queue short."""
        returned = len(self._held)
        for message in self._held.values():
            with contextlib.suppress(Exception):
                await message.nack(requeue=True)
        self._held.clear()
        if self._queue is None or not returned:
            return
        for pause in _EMPTY_GET_PAUSES * 3:
            with contextlib.suppress(Exception):
                counted = await self._queue.channel.declare_queue(self.name, passive=True)
                if (counted.declaration_result.message_count or 0) >= returned:
                    return
            await asyncio.sleep(pause)


async def _open_queue(connection: AbstractConnection, name: str) -> HeldQueue:
    # A channel per queue: a passive declare of a missing queue closes its channel.
    channel = await connection.channel()
    try:
        queue = await channel.declare_queue(name, passive=True)
    except aiormq.exceptions.ChannelNotFoundEntity:
        return HeldQueue(name, None, 0)  # never declared: nothing held there
    return HeldQueue(name, queue, int(queue.declaration_result.message_count or 0))


@contextlib.asynccontextmanager
async def reading(amqp_url: str, names: Collection[str]) -> AsyncIterator[dict[str, HeldQueue]]:
    """The queues ``names``, for one run; everything not removed goes back when the block ends.

    Raises ``ToolError`` when RabbitMQ cannot be reached or fails midway; held messages return to
    their queue with the connection, so nothing is lost either way.
    """
    try:
        connection = await asyncio.wait_for(
            connect_broker(amqp_url, connect_timeout=_CONNECT_TIMEOUT_SECONDS),
            _CONNECT_TIMEOUT_SECONDS,
        )
    except Exception as exc:
        raise ToolError(
            f"RabbitMQ not usable at {redact(amqp_url)} ({type(exc).__name__}); "
            "`hiker doctor` says why"
        ) from None
    queues: dict[str, HeldQueue] = {}
    try:
        for name in names:
            queues[name] = await _open_queue(connection, name)
        yield queues
    except (aiormq.exceptions.AMQPError, ConnectionError) as exc:
        raise ToolError(
            f"RabbitMQ failed midway ({type(exc).__name__}); what was not done stays where it was"
        ) from None
    finally:
        for queue in queues.values():
            await queue.release()
        with contextlib.suppress(Exception):
            await connection.close()


class Replayer:
    """Publishes replayed copies and removes their originals, in that order."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    async def replay(self, held: HeldQueue, message: AbstractIncomingMessage, copy: Copy) -> None:
        """Publish ``copy`` and wait for the broker's confirm; only then remove ``message``.

        ``ToolError`` when the broker did not take the copy; ``message`` then stays held (and
        goes back to its queue at the end of the run).
        """
        try:
            await self._broker.publish(
                copy.route.exchange,
                copy.route.routing_key,
                copy.body,
                type_name=copy.type_name,
                message_id=copy.message_id,
                correlation_id=copy.correlation_id,
                headers=copy.headers,
            )
        except PublishFailed as exc:
            raise ToolError(
                f"the broker did not take the copy for {copy.route} ({exc}); "
                "it stays where it was, and nothing after it was replayed"
            ) from None
        await held.remove(message)


@contextlib.asynccontextmanager
async def replaying(amqp_url: str, exchanges: Collection[str] = ()) -> AsyncIterator[Replayer]:
    """A ``Replayer`` publishing to the default exchange and to ``exchanges`` (Hiker's own).

    The exchanges are declared as the services declare them, which is a no-op where they exist.
    """
    specs = tuple(spec for spec in topology.EXCHANGES if spec.name in exchanges)
    unknown = set(exchanges) - {spec.name for spec in specs} - {""}
    if unknown:
        raise ToolError(f"not a Hiker exchange: {', '.join(sorted(unknown))}")
    broker = Broker(amqp_url, client_name="hiker-replay", publish_timeout=_PUBLISH_TIMEOUT_SECONDS)
    try:
        await asyncio.wait_for(broker.connect(topology.Topology(specs)), _CONNECT_TIMEOUT_SECONDS)
    except Exception as exc:
        await broker.close()
        raise ToolError(
            f"RabbitMQ not usable for publishing at {redact(amqp_url)} ({type(exc).__name__}); "
            "`hiker doctor` says why"
        ) from None
    try:
        yield Replayer(broker)
    finally:
        await broker.close()
