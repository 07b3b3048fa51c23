"""An AMQP URL listing several nodes, against the real broker and ports where nothing listens:
each (re)connection goes to the next node that accepts it. (Moving on when a node of a real
cluster stops is tests/ha's.)"""

from __future__ import annotations

import urllib.parse

import aiormq
import pytest
from yarl import URL

from hiker.core.addresses import Node, parse_amqp_url
from hiker.core.amqp_nodes import NodeRotation
from hiker.core.broker import Broker, connect
from hiker.core.settings import CommonSettings, load_settings
from hiker.core.topology import ExchangeSpec, QueueSpec, Topology
from hiker.tools.doctor.rabbitmq import check_rabbitmq
from hiker.tools.doctor.report import Status
from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration

TOPOLOGY = Topology(
    (ExchangeSpec("test.nodes", "direct"),),
    (QueueSpec("test.nodes.q", {"x-queue-type": "quorum"}, (("test.nodes", "k"),)),),
)


def with_dead_nodes(amqp_url: str) -> tuple[str, Node, Node]:
    """``amqp_url`` with a node on either side of the real one where nothing listens."""
    parts = urllib.parse.urlsplit(amqp_url)
    real = Node(parts.hostname or "127.0.0.1", parts.port or 5672)
    before, after = Node("127.0.0.1", free_port()), Node("127.0.0.1", free_port())
    netloc = f"{parts.username}:{parts.password}@{before},{real},{after}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), real, after


async def test_the_services_connection_skips_nodes_that_refuse(amqp_url: str) -> None:
    listed, _, _ = with_dead_nodes(amqp_url)
    broker = Broker(listed, client_name="test-nodes", quorum_group_size=1)
    await broker.connect(TOPOLOGY)
    try:
        await broker.publish("test.nodes", "k", b"{}", type_name="Probe")
        assert await broker.queue_depth("test.nodes.q") == 1
    finally:
        await broker.close()


async def test_each_connection_goes_round_to_a_node_that_accepts(amqp_url: str) -> None:
    listed, real, _ = with_dead_nodes(amqp_url)
    nodes = NodeRotation(parse_amqp_url(listed).nodes, tls=False, first=0)
    # The first skips the dead node before the real one; the second starts after the real
    # one and goes round the list, past both dead nodes, back to it.
    for _ in range(2):
        _, writer = await nodes.create(URL("amqp://the-url-is-not-used/"))
        writer.close()
        assert nodes.current == real


async def test_no_node_answering_is_a_connection_error(amqp_url: str) -> None:
    dead = ",".join(f"127.0.0.1:{free_port()}" for _ in range(2))
    with pytest.raises(aiormq.exceptions.AMQPConnectionError, match="no RabbitMQ node accepted"):
        await connect(f"amqp://guest:guest@{dead}/", connect_timeout=5)


async def test_doctor_names_the_listed_nodes_that_do_not_answer(amqp_url: str) -> None:
    listed, _, after = with_dead_nodes(amqp_url)
    findings = {f.check: f for f in await check_rabbitmq(listed, [], 3)}
    assert findings["rabbitmq"].status is Status.OK
    assert "***" in findings["rabbitmq"].detail  # the password never shows
    nodes = findings["rabbitmq: nodes"]
    assert nodes.status is Status.WARN
    assert str(after) in nodes.detail
    assert "2 of 3 listed nodes do not answer" in nodes.detail


async def test_a_services_broker_declares_the_configured_quorum_group_size(amqp_url: str) -> None:
    # Every service builds its broker this way: one that left the group size out would declare
    # its queues otherwise than the settings (and hiker doctor) say.
    settings = load_settings(
        CommonSettings, {"HIKER_AMQP_URL": amqp_url, "HIKER_AMQP_QUORUM_GROUP_SIZE": "1"}
    )
    queue = QueueSpec("test.group-size.q", {"x-queue-type": "quorum"}, ())
    broker = Broker.of_service(settings, "test-group-size")
    await broker.connect(Topology((), (queue,)))
    connection = await connect(amqp_url)
    try:
        # The group size is part of a quorum queue's equivalence: declared again with the
        # configured one it is the same queue, with another it is refused.
        channel = await connection.channel()
        await channel.declare_queue(
            queue.name,
            durable=True,
            arguments={"x-queue-type": "quorum", "x-quorum-initial-group-size": 1},
        )
        channel = await connection.channel()
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed):
            await channel.declare_queue(
                queue.name,
                durable=True,
                arguments={"x-queue-type": "quorum", "x-quorum-initial-group-size": 2},
            )
    finally:
        await connection.close()
        await broker.close()
