"""Where Hiker leans on a library's internals for speed or for a notification the library does
not expose, these fail loudly when a new release of the pinned library moves what is used
(each trick's module says why it is worth it)."""

from __future__ import annotations

import asyncio
import inspect

import aio_pika
import aiormq
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from yarl import URL

from hiker.core.addresses import Node
from hiker.core.amqp_blocked import unblocked_event
from hiker.core.amqp_nodes import NodeRotation, _RobustThroughNodes


async def test_aiormq_keeps_the_connection_blocked_flag_hiker_reads() -> None:
    # core.amqp_blocked: the flag aiormq sets and clears on connection.blocked / unblocked.
    connection = aiormq.Connection(URL("amqp://guest:guest@127.0.0.1:1/"))
    event = unblocked_event(connection)
    assert isinstance(event, asyncio.Event)
    handlers = {name for name in vars(aiormq.Connection) if "connection_blocked" in name}
    assert handlers, "aiormq no longer handles connection.blocked itself"


def test_aiormq_publishes_without_waiting_for_the_socket_write() -> None:
    # core.amqp_publish: basic_publish(..., wait=False) on aiormq's own channel.
    parameters = inspect.signature(aiormq.Channel.basic_publish).parameters
    assert "wait" in parameters
    assert parameters["wait"].default is True


async def test_aio_pika_hands_aiormq_the_transport_factory_hiker_writes() -> None:
    # core.amqp_nodes: aio-pika keeps its keyword arguments in ``kwargs`` and passes them to
    # aiormq, whose connection takes a ``transport_factory``.
    nodes = NodeRotation((Node("127.0.0.1", 1),), tls=False)
    connection = _RobustThroughNodes(URL("amqp://guest:guest@127.0.0.1:1/"), nodes=nodes)
    assert connection.kwargs["transport_factory"] is nodes
    assert "transport_factory" in inspect.signature(aiormq.Connection.__init__).parameters
    assert issubclass(_RobustThroughNodes, aio_pika.RobustConnection)


def test_redis_py_lets_a_client_pipeline_and_send_commands_itself() -> None:
    # core.redis_pipelining: auto-pipelining overrides execute_command and sends a batch through a
    # non-transactional pipeline whose execute can leave each command's error to its caller.
    assert "execute_command" in vars(Redis)
    assert "transaction" in inspect.signature(Redis.pipeline).parameters
    assert "raise_on_error" in inspect.signature(Pipeline.execute).parameters
