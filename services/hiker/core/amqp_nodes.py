"""Connections to a RabbitMQ cluster listed in one URL, through aio-pika's transport factory.

``HIKER_AMQP_URL`` may list the nodes of a cluster (``amqp://u:p@h1:5672,h2:5672,h3:5672/vhost``).
aio-pika knows one address; its robust connection re-opens channels, queues and consumers after
a loss, and it opens each new TCP (or TLS) connection through aiormq's ``transport_factory``.
Hiker's factory (``NodeRotation``) goes round the listed nodes, so a connection lost with its
node is re-opened on the next one that answers, with everything aio-pika restores on it.

This leans on a library internal: aio-pika passes only the keyword arguments it knows to
aiormq, so the factory is written into ``Connection.kwargs`` after construction. The test
``tests/unit/test_library_internals.py`` fails loudly when a new aio-pika or aiormq moves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any, Final

import aio_pika
import aiormq
from aio_pika.abc import AbstractConnection
from aiormq.connection import TransportFactory
from pamqp.common import FieldTable
from yarl import URL

from hiker.core.addresses import Node, parse_amqp_url

log = logging.getLogger(__name__)


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
