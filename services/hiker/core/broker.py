"""RabbitMQ adapter: one robust connection per process, confirmed publishing, acked consuming.

Publishing always uses publisher confirms, persistent delivery and ``mandatory`` so that a message
the broker did not take (nack, unroutable, connection lost, timeout) raises ``PublishFailed``
instead of vanishing. Consumers ack only after their handler, and every publish it made, finished
(the policy is ``core.consumer``'s).

The URL may list the nodes of a cluster (``amqp://u:p@h1:5672,h2:5672,h3:5672/vhost``). aio-pika
knows one address; its robust connection re-opens channels, queues and consumers after a loss,
and it opens each new TCP (or TLS) connection through aiormq's transport factory. Hiker's
factory (``NodeRotation``) goes round the listed nodes, so a connection lost with its node is
re-opened on the next one that answers, with everything aio-pika restores on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, cast

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
from aiormq.connection import TransportFactory
from pamqp.common import FieldTable
from yarl import URL

from hiker.core.addresses import Node, parse_amqp_url
from hiker.core.consumer import Headers, QueueConsumer, Routes
from hiker.core.dependencies import DependencyGate
from hiker.core.errors import PublishFailed
from hiker.core.topology import QueueSpec, Topology, for_server, server_version

if TYPE_CHECKING:
    from hiker.core.settings import CommonSettings

log = logging.getLogger(__name__)


# What the connection keeper retries on: the broker away or refusing, not a bug of ours.
_RECONNECTABLE: tuple[type[BaseException], ...] = (
    PublishFailed,
    ConnectionError,
    TimeoutError,
    OSError,
    aiormq.exceptions.AMQPError,
)


@dataclass
class _Consumer:
    queue: AbstractQueue
    channel: AbstractChannel
    tag: str
    inflight: set[asyncio.Task[None]] = field(default_factory=set)


# How long a publish waits for the broker's confirm before it counts as failed.
PUBLISH_TIMEOUT_SECONDS: Final = 10.0


class Broker:
    """A robust connection with a confirm-mode publishing channel and any number of consumers.

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
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._declared_queues: dict[str, AbstractQueue] = {}
        self._consumers: list[_Consumer] = []
        self._stopping = asyncio.Event()
        self._serving = False
        # Known once connected; some queue arguments depend on it (``topology.for_server``).
        self._server_version: tuple[int, int] = (0, 0)

    @classmethod
    def of_service(
        cls,
        settings: CommonSettings,
        client_name: str,
        *,
        publish_timeout: float = PUBLISH_TIMEOUT_SECONDS,
    ) -> Broker:
        """A service's broker, as its settings give it: the URL (a cluster's nodes) and the
        quorum group size, which every service that declares queues must declare alike."""
        return cls(
            settings.amqp_url.get_secret_value(),
            client_name=client_name,
            publish_timeout=publish_timeout,
            quorum_group_size=settings.amqp_quorum_group_size,
        )

    async def connect(self, topology: Topology) -> None:
        """Connect, open the publishing channel and declare ``topology``.

        Calling it again (a retry after a failed start) first drops the previous connection.
        """
        if self._connection is not None:
            await self.close()
            self._stopping.clear()
        connection = await connect(self._url, robust=True, client_name=self._client_name)
        assert isinstance(connection, AbstractRobustConnection)
        try:
            self._server_version = broker_version(connection)
            self._channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            self._connection = connection
            self._exchanges[""] = self._channel.default_exchange
            await self.declare(topology)
        except BaseException:
            # A half-made connection would keep reconnecting in the background; drop it.
            self._connection = self._channel = None
            self._exchanges.clear()
            self._declared_queues.clear()
            await connection.close()
            raise

    @property
    def channel(self) -> AbstractChannel:
        if self._channel is None:
            raise RuntimeError("Broker.connect() was not called")
        return self._channel

    def is_connected(self) -> bool:
        return (
            self._connection is not None
            and not self._connection.is_closed
            and self._channel is not None
            and not self._channel.is_closed
        )

    def mark_serving(self) -> None:
        """Everything the service needs is declared and consumed: it may report ready."""
        self._serving = True

    async def is_ready(self) -> bool:
        """Readiness probe: connected, and set up (``mark_serving``) since the last connect."""
        return self._serving and self.is_connected()

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
        rather than risking the publishing one.
        """
        if self._connection is None:
            raise RuntimeError("Broker.connect() was not called")
        channel = await self._connection.channel(publisher_confirms=False)
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
        # Properties go straight to the channel: an aio_pika.Message would be built only to be
        # converted into these, a quarter of a publish's CPU at thousands per second.
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
        try:
            if self.channel.is_closed:
                raise aiormq.exceptions.ChannelInvalidStateError("publishing channel closed")
            # aiormq's channel, whose basic_publish takes ``wait`` (its abstract one does not).
            underlay = cast(aiormq.Channel, await self.channel.get_underlay_channel())
            await underlay.basic_publish(
                body,
                exchange=target.name,
                routing_key=routing_key,
                properties=properties,
                mandatory=mandatory,
                timeout=self._publish_timeout,
                # The confirm is what counts: waiting for the socket write first as well would
                # cost a future and a drain per publish, and prove nothing the confirm does not.
                wait=False,
            )
        except aio_pika.exceptions.PublishError as exc:  # a DeliveryError too: first
            raise PublishFailed(f"no queue bound for {exchange}/{routing_key}") from exc
        except aio_pika.exceptions.DeliveryError as exc:
            raise PublishFailed(f"broker refused the message ({exchange}/{routing_key})") from exc
        except (TimeoutError, aiormq.exceptions.AMQPError, ConnectionError, RuntimeError) as exc:
            raise PublishFailed(f"broker unavailable: {type(exc).__name__}") from exc

    async def consume(
        self, spec: QueueSpec, routes: Routes, *, prefetch: int, gate: DependencyGate
    ) -> None:
        """Deliver ``spec``'s messages to ``routes`` on a channel of their own.

        What becomes of each message (ack, held, poisoned) is ``core.consumer``'s policy;
        ``gate`` is where the consumers of a service share which dependency is failing.
        """
        if self._connection is None:
            raise RuntimeError("Broker.connect() was not called")
        channel = await self._connection.channel(publisher_confirms=False)
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
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
        self._connection = self._channel = None
        self._consumers.clear()
        self._declared_queues.clear()
        self._exchanges.clear()


async def keep_trying(action: Callable[[], Awaitable[None]], what: str) -> None:
    """Run ``action`` until it succeeds, backing off; a dependency that is down is not a crash.

    Readiness probes report the wait; logs say what is being waited for, once per attempt.
    """
    delay = 0.5
    while True:
        try:
            await action()
        except aiormq.exceptions.ChannelPreconditionFailed as exc:
            # A queue exists with other arguments: an operator must fix it, retrying alone won't.
            log.error("%s refused the declared topology: %s", what, exc)
        except _RECONNECTABLE as exc:
            log.warning("%s unavailable (%s); retrying in %.1fs", what, type(exc).__name__, delay)
        else:
            log.info("%s connected", what)
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, 10.0)


def broker_version(connection: AbstractConnection) -> tuple[int, int]:
    """The broker's version from the connection handshake (``(0, 0)`` when it does not say)."""
    underlay = connection.transport
    properties = underlay.connection.server_properties if underlay is not None else {}
    version = properties.get("version", b"")
    text = version.decode() if isinstance(version, bytes) else str(version)
    return server_version(text)


# How long one node may take to accept a TCP connection before the next one is tried: a node
# that is down but not refusing (a lost host, a partition) would otherwise hold the reconnect.
NODE_CONNECT_TIMEOUT_SECONDS: Final = 5.0
# Pause between reconnection attempts when several nodes are listed: the next node is expected
# to be up, so waiting aio-pika's default would only lengthen the outage.
_CLUSTER_RECONNECT_SECONDS: Final = "1"


class NodeRotation(TransportFactory):
    """Opens each connection to the next listed node that accepts it, going round the list.

    Each (re)connection starts at the node after the one used last: a connection lost with its
    node moves on at once. The first node is picked at random, so that replicas spread their
    connections over the cluster.
    """

    def __init__(
        self,
        nodes: tuple[Node, ...],
        *,
        tls: bool,
        connect_timeout: float = NODE_CONNECT_TIMEOUT_SECONDS,
        first: int | None = None,
    ) -> None:
        if not nodes:
            raise ValueError("no nodes")
        self.nodes = nodes
        self._tls = tls
        self._connect_timeout = connect_timeout
        self._next = random.randrange(len(nodes)) if first is None else first % len(nodes)
        # The node of the latest connection (tests and logs).
        self.current: Node | None = None

    async def create(
        self, url: URL, **kwargs: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        provider = kwargs.pop("ssl_context_provider", None)
        ssl = await provider.get_context() if self._tls and provider is not None else None
        failures: list[str] = []
        for _ in self.nodes:
            node = self.nodes[self._next]
            self._next = (self._next + 1) % len(self.nodes)
            try:
                streams = await asyncio.wait_for(
                    asyncio.open_connection(host=node.host, port=node.port, ssl=ssl, **kwargs),
                    self._connect_timeout,
                )
            except (OSError, TimeoutError) as exc:
                failures.append(f"{node} ({type(exc).__name__})")
                continue
            if self.current is not None and node != self.current:
                log.warning("RabbitMQ connection moved to node %s", node)
            self.current = node
            return streams
        raise aiormq.exceptions.AMQPConnectionError(
            "no RabbitMQ node accepted a connection: " + ", ".join(failures)
        )


class _ThroughNodes(aio_pika.Connection):
    """A connection whose transports are opened by a ``NodeRotation``."""

    def __init__(self, url: URL, *, nodes: NodeRotation, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        # aio-pika keeps only the keyword arguments it knows; aiormq takes this one.
        self.kwargs["transport_factory"] = nodes


class _RobustThroughNodes(aio_pika.RobustConnection):
    """A robust connection whose transports are opened by a ``NodeRotation``."""

    def __init__(self, url: URL, *, nodes: NodeRotation, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.kwargs["transport_factory"] = nodes


async def connect(
    url: str,
    *,
    robust: bool = False,
    client_name: str | None = None,
    connect_timeout: float | None = None,
) -> AbstractConnection:
    """A connection to the broker at ``url``, which may list several nodes (module notes).

    ``robust``: aio-pika's connection that reconnects and restores channels, queues and
    consumers on its own (the services'); otherwise one that stays closed once lost (tools).
    """
    address = parse_amqp_url(url)
    properties: FieldTable | None = {"connection_name": client_name} if client_name else None
    if len(address.nodes) == 1:
        if robust:
            return await aio_pika.connect_robust(
                url, client_properties=properties, timeout=connect_timeout
            )
        return await aio_pika.connect(url, client_properties=properties, timeout=connect_timeout)
    nodes = NodeRotation(address.nodes, tls=address.tls)
    first = URL(address.url_for(address.nodes[0]))
    options: dict[str, Any] = {"nodes": nodes}
    if properties is not None:
        options["client_properties"] = properties
    connection: AbstractConnection
    if robust:
        if "reconnect_interval" not in first.query:
            options["reconnect_interval"] = _CLUSTER_RECONNECT_SECONDS
        connection = _RobustThroughNodes(first, **options)
    else:
        connection = _ThroughNodes(first, **options)
    try:
        await connection.connect(timeout=connect_timeout)
    except BaseException:
        with contextlib.suppress(Exception):
            await connection.close()
        raise
    return connection
