"""Broker.publish against the real RabbitMQ: what arrives, and what it does when not taken."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aio_pika
import pytest

from hiker.core.broker import Broker
from hiker.core.errors import PublishFailed
from hiker.core.topology import ExchangeSpec, QueueSpec, Topology

pytestmark = pytest.mark.integration

EXCHANGE = "test.publish"
TOPOLOGY = Topology(
    (ExchangeSpec(EXCHANGE, "direct"),),
    (
        QueueSpec("test.publish.taken", {"x-queue-type": "quorum"}, ((EXCHANGE, "taken"),)),
        # Holds one message and refuses the next: the broker nacks it. (A classic queue: a
        # quorum queue applies its length limit a message or two late.)
        QueueSpec(
            "test.publish.full",
            {"x-queue-type": "classic", "x-max-length": 1, "x-overflow": "reject-publish"},
            ((EXCHANGE, "full"),),
        ),
    ),
)


@pytest.fixture
async def broker(amqp_url: str) -> AsyncIterator[Broker]:
    broker = Broker(amqp_url, client_name="test-publish", publish_timeout=5)
    await broker.connect(TOPOLOGY)
    yield broker
    await broker.close()


async def test_a_published_message_arrives_persistent_with_its_properties(
    broker: Broker, amqp_url: str
) -> None:
    await broker.publish(
        EXCHANGE,
        "taken",
        b'{"a": 1}',
        type_name="thing.happened",
        message_id="m-1",
        correlation_id="c-1",
        headers={"x-attempt": 3},
        expiration_ms=60_000,
    )
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue("test.publish.taken", ensure=False)
        message = await queue.get(timeout=5)
        assert message is not None
        await message.ack()
    finally:
        await connection.close()
    assert message.body == b'{"a": 1}'
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert (message.type, message.message_id, message.correlation_id) == (
        "thing.happened",
        "m-1",
        "c-1",
    )
    assert message.content_type == "application/json"
    assert message.headers["x-attempt"] == 3
    assert message.expiration == 60.0


async def test_an_unroutable_message_is_not_taken(broker: Broker) -> None:
    with pytest.raises(PublishFailed, match="no queue bound"):
        await broker.publish(EXCHANGE, "nowhere", b"{}", type_name="t", message_id="m-2")


async def test_a_message_the_broker_refuses_is_not_taken(broker: Broker) -> None:
    await broker.publish(EXCHANGE, "full", b"{}", type_name="t", message_id="m-3")
    with pytest.raises(PublishFailed, match="refused"):
        await broker.publish(EXCHANGE, "full", b"{}", type_name="t", message_id="m-4")
    # The channel survives a refusal: the next publish elsewhere goes through.
    await broker.publish(EXCHANGE, "taken", b"{}", type_name="t", message_id="m-5")


async def test_concurrent_publishes_each_get_their_own_answer(broker: Broker) -> None:
    outcomes = await asyncio.gather(
        *(
            broker.publish(EXCHANGE, key, b"{}", type_name="t", message_id=f"c-{i}")
            for i, key in enumerate(["taken", "nowhere"] * 20)
        ),
        return_exceptions=True,
    )
    assert outcomes[0::2] == [None] * 20
    assert all(isinstance(o, PublishFailed) for o in outcomes[1::2])
