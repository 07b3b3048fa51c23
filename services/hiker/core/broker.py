"""RabbitMQ adapter: confirmed publishing and acked consuming, on two connections of a service.

Publishing always uses publisher confirms, persistent delivery and ``mandatory`` so that a message
the broker did not take (nack, unroutable, connection lost, timeout) raises ``PublishFailed``
instead of vanishing. Consumers ack only after their handler, and every publish it made, finished
(the policy is ``core.consumer``'s).

Publishing and consuming go through connections of their own, as RabbitMQ advises: during a
memory or disk alarm the broker stops reading from connections that publish, and acks sent on a
blocked connection would wait with everything else, holding messages unacked that the consumers
had long finished. While publishing is blocked, a publish fails at once without writing
(``core.amqp_blocked``), the service reports not ready, and consumers hold their messages as
for any dependency in trouble.

The URL may list the nodes of a cluster; each connection goes round them (``core.amqp_nodes``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
    DeliveryMode,
)

from hiker.core.amqp_blocked import is_blocked
from hiker.core.amqp_nodes import connect
from hiker.core.amqp_publish import publish_confirmed
from hiker.core.consumer import Headers, QueueConsumer, Routes
from hiker.core.contracts import Contract
from hiker.core.dependencies import DependencyGate
from hiker.core.errors import PublishFailed
from hiker.core.topology import (
    HEADER_CORRELATION_ID,
    QueueSpec,
    Topology,
    for_server,
    server_version,
)

if TYPE_CHECKING:
    from hiker.core.settings import CommonSettings

log = logging.getLogger(__name__)

__all__ = ["PUBLISH_TIMEOUT_SECONDS", "Broker", "broker_version", "connect"]


@dataclass
class _Consumer:
    queue: AbstractQueue
    channel: AbstractChannel
    tag: str
    inflight: set[asyncio.Task[None]] = field(default_factory=set)


# How long a publish waits for the broker's confirm before it counts as failed.
PUBLISH_TIMEOUT_SECONDS: Final = 10.0


class Broker:
    """Two robust connections: one with a confirm-mode publishing channel, one for consumers.

    aio-pika holds channels and queues weakly; this object keeps the strong references that make
    robust reconnection restore them.
    """

    def __init__(
        self,
        url: str,
        *,
        client_name: str,
        publish_timeout: float = PUBLISH_TIMEOUT_SECONDS,
        quorum_group_size: int | None = None,
    ) -> None:
        """``url`` may list several nodes; ``quorum_group_size``: see ``topology.for_server``."""
        self._url = url
        self._client_name = client_name
        self._publish_timeout = publish_timeout
        self._quorum_group_size = quorum_group_size
        self._publishing: AbstractRobustConnection | None = None
        self._consuming: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._declared_queues: dict[str, AbstractQueue] = {}
        self._consumers: list[_Consumer] = []
        self._stopping = asyncio.Event()
        self._serving = False
        # Known once connected; some queue arguments depend on it (``topology.for_server``).
        self._server_version: tuple[int, int] = (0, 0)

    @classmethod
    def of_service(cls, settings: CommonSettings, client_name: str) -> Broker:
        """A service's broker, as its settings give it: the URL (a cluster's nodes), the
        publish timeout and the quorum group size, which every service that declares queues
        must declare alike."""
        return cls(
            settings.amqp_url.get_secret_value(),
            client_name=client_name,
            publish_timeout=settings.publish_timeout_seconds,
            quorum_group_size=settings.amqp_quorum_group_size,
        )

    async def connect(self, topology: Topology) -> None:
        """Connect both connections, open the publishing channel and declare ``topology``.

        Calling it again (a retry after a failed start) first drops the previous connections.
        """
        if self._publishing is not None or self._consuming is not None:
            await self.close()
            self._stopping.clear()
        publishing = consuming = None
        try:
            publishing = await self._open("publish")
            consuming = await self._open("consume")
            self._server_version = broker_version(publishing)
            self._channel = await publishing.channel(publisher_confirms=True, on_return_raises=True)
            self._publishing, self._consuming = publishing, consuming
            self._exchanges[""] = self._channel.default_exchange
            await self.declare(topology)
        except BaseException:
            # A half-made connection would keep reconnecting in the background; drop it.
            self._publishing = self._consuming = None
            self._channel = None
            self._exchanges.clear()
            self._declared_queues.clear()
            for connection in (publishing, consuming):
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await connection.close()
            raise

    async def _open(self, role: str) -> AbstractRobustConnection:
        connection = await connect(
            self._url, robust=True, client_name=f"{self._client_name} {role}"
        )
        assert isinstance(connection, AbstractRobustConnection)
        return connection

    @property
    def channel(self) -> AbstractChannel:
        if self._channel is None:
            raise RuntimeError("Broker.connect() was not called")
        return self._channel

    def is_connected(self) -> bool:
        return all(
            connection is not None and not connection.is_closed
            for connection in (self._publishing, self._consuming)
        ) and (self._channel is not None and not self._channel.is_closed)

    def is_blocked(self) -> bool:
        """Whether RabbitMQ blocks this service's publishers now (a resource alarm)."""
        return is_blocked(self._publishing)

    def mark_serving(self) -> None:
        """Everything the service needs is declared and consumed: it may report ready."""
        self._serving = True

    async def is_ready(self) -> bool:
        """Readiness probe: connected, set up (``mark_serving``) since the last connect, and
        allowed to publish (not blocked by a resource alarm)."""
        return self._serving and self.is_connected() and not self.is_blocked()

    async def declare(self, topology: Topology) -> None:
        for spec in topology.exchanges:
            self._exchanges[spec.name] = await self.channel.declare_exchange(
                spec.name, type=spec.type, durable=True
            )
        for queue in topology.queues:
            await self.declare_queue(queue)

    async def declare_queue(self, spec: QueueSpec) -> AbstractQueue:
        """Declare ``spec`` once per process (re-declared by aio-pika after reconnects)."""
        known = self._declared_queues.get(spec.name)
        if known is not None:
            return known
        spec = self._as_declared(spec)
        queue = await self.channel.declare_queue(
            spec.name, durable=True, arguments=dict(spec.arguments)
        )
        for exchange, routing_key in spec.bindings:
            await queue.bind(exchange, routing_key)
        self._declared_queues[spec.name] = queue
        return queue

    def _as_declared(self, spec: QueueSpec) -> QueueSpec:
        return for_server(spec, self._server_version, quorum_group_size=self._quorum_group_size)

    async def queue_depth(self, name: str) -> int | None:
        """Messages ready in ``name`` (passive declare), or None when it does not exist.

        A passive declare of a missing queue closes its channel, so it gets a channel of its own
        (on the consuming connection, which an alarm does not block).
        """
        if self._consuming is None:
            raise RuntimeError("Broker.connect() was not called")
        channel = await self._consuming.channel(publisher_confirms=False)
        try:
            queue = await channel.declare_queue(name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return None
        finally:
            with contextlib.suppress(Exception):
                await channel.close()
        return int(queue.declaration_result.message_count or 0)

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        type_name: str,
        message_id: str | None = None,
        correlation_id: str | None = None,
        headers: Mapping[str, Any] | None = None,
        expiration_ms: int | None = None,
        mandatory: bool = True,
    ) -> None:
        """Publish and await the broker's confirm; PublishFailed when it did not take it.

        ``mandatory``: a message no queue is bound for is refused (``no queue bound``); only
        events that may have no taker (the outcomes of sends) are published without it.
        """
        properties = aiormq.spec.Basic.Properties(
            content_type="application/json",
            delivery_mode=DeliveryMode.PERSISTENT.value,
            message_type=type_name,
            message_id=message_id,
            correlation_id=correlation_id,
            headers=dict(headers or {}),
            expiration=str(expiration_ms) if expiration_ms is not None else None,
        )
        target = self._exchanges.get(exchange)
        if target is None:
            raise PublishFailed(f"exchange {exchange!r} was not declared")
        if self.is_blocked():
            # Written now, it would wait in buffers and land after the alarm, long after the
            # caller was told it failed: nothing is written while blocked.
            raise PublishFailed("broker blocked publishers (resource alarm)")
        try:
            if self.channel.is_closed:
                raise aiormq.exceptions.ChannelInvalidStateError("publishing channel closed")
            await publish_confirmed(
                self.channel,
                body,
                exchange=target.name,
                routing_key=routing_key,
                properties=properties,
                mandatory=mandatory,
                timeout=self._publish_timeout,
            )
        except aio_pika.exceptions.PublishError as exc:  # a DeliveryError too: first
            raise PublishFailed(f"no queue bound for {exchange}/{routing_key}") from exc
        except aio_pika.exceptions.DeliveryError as exc:
            raise PublishFailed(f"broker refused the message ({exchange}/{routing_key})") from exc
        except (TimeoutError, aiormq.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
            raise PublishFailed(f"broker unavailable: {type(exc).__name__}") from exc

    async def publish_contract(
        self,
        exchange: str,
        routing_key: str,
        contract: Contract,
        *,
        message_id: str | None = None,
        correlation_id: str | None = None,
        headers: Mapping[str, Any] | None = None,
        expiration_ms: int | None = None,
    ) -> None:
        """``publish`` of one contract alone (not bundled): its JSON, typed by its name; the
        correlation id travels in the headers too, as every hop of a journey carries it."""
        if correlation_id is not None:
            headers = {HEADER_CORRELATION_ID: correlation_id, **(headers or {})}
        await self.publish(
            exchange,
            routing_key,
            contract.to_bytes(),
            type_name=contract.type_name(),
            message_id=message_id,
            correlation_id=correlation_id,
            headers=headers,
            expiration_ms=expiration_ms,
        )

    async def consume(
        self, spec: QueueSpec, routes: Routes, *, prefetch: int, gate: DependencyGate
    ) -> None:
        """Deliver ``spec``'s messages to ``routes`` on a channel of their own.

        What becomes of each message (ack, held, poisoned) is ``core.consumer``'s policy;
        ``gate`` is where the consumers of a service share which dependency is failing.
        """
        if self._consuming is None:
            raise RuntimeError("Broker.connect() was not called")
        channel = await self._consuming.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=prefetch)
        spec = self._as_declared(spec)
        queue = await channel.declare_queue(spec.name, durable=True, arguments=dict(spec.arguments))
        handler = QueueConsumer(
            spec.name, routes, gate=gate, set_apart=self._set_apart, stopping=self._stopping
        )
        consumer = _Consumer(queue=queue, channel=channel, tag="")

        async def on_message(message: AbstractIncomingMessage) -> None:
            task = asyncio.current_task()
            if task is not None:
                consumer.inflight.add(task)
            try:
                await handler.on_message(message)
            finally:
                if task is not None:
                    consumer.inflight.discard(task)

        consumer.tag = await queue.consume(on_message)
        self._consumers.append(consumer)

    async def _set_apart(self, queue: str, body: bytes, type_name: str, headers: Headers) -> None:
        await self.publish("", queue, body, type_name=type_name, headers=dict(headers))

    async def stop_consuming(self, grace_seconds: float = 10.0) -> None:
        """Stop new deliveries, then wait up to ``grace_seconds`` for handlers in flight."""
        self._stopping.set()
        for consumer in self._consumers:
            with contextlib.suppress(Exception):
                await consumer.queue.cancel(consumer.tag)
        pending = {task for c in self._consumers for task in c.inflight}
        if pending:
            await asyncio.wait(pending, timeout=grace_seconds)

    async def close(self) -> None:
        await self.stop_consuming()
        self._serving = False
        for connection in (self._consuming, self._publishing):
            if connection is not None:
                with contextlib.suppress(Exception):
                    await connection.close()
        self._publishing = self._consuming = None
        self._channel = None
        self._consumers.clear()
        self._declared_queues.clear()
        self._exchanges.clear()


def broker_version(connection: AbstractConnection) -> tuple[int, int]:
    """The broker's version from the connection handshake (``(0, 0)`` when it does not say)."""
    underlay = connection.transport
    properties = underlay.connection.server_properties if underlay is not None else {}
    version = properties.get("version", b"")
    text = version.decode() if isinstance(version, bytes) else str(version)
    return server_version(text)
