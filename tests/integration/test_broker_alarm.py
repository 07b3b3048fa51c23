"""A RabbitMQ resource alarm, raised for real on a node of the test's own: publishers are
blocked. Hiker must stop writing at once (no frames piling up to land after the alarm), answer
Meta 503 and report not ready, keep its consumers' acks flowing on their own connection, hold
what it cannot publish, and after the alarm land each update once."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable

import pytest

from hiker.tools.simulate import messages_change, text_message, webhook_body
from tests.integration.conftest import Pipeline, PipelineFactory
from tests.integration.private_rabbitmq import PrivateRabbitMQ, private_rabbitmq
from tests.support import metric_value, queue_depth

__all__ = ["private_rabbitmq"]

pytestmark = [pytest.mark.integration, pytest.mark.slow]

INBOUND = "hiker.conversation.inbound"
# ``make soak`` runs these with ten times the users.
SCALE = int(os.environ.get("HIKER_SOAK_SCALE", "1"))


async def until(condition: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def ready(pipeline: Pipeline, ops: str) -> bool:
    async with pipeline.session.get(pipeline.url(ops, "/readyz")) as response:
        return response.status == 200


async def test_ingress_stops_writing_while_blocked_and_each_update_lands_once(
    make_pipeline: PipelineFactory, private_rabbitmq: PrivateRabbitMQ
) -> None:
    url = private_rabbitmq.new_vhost()
    pipeline = await make_pipeline(
        services=("graph", "ingress"),
        HIKER_AMQP_URL=url,
        HIKER_PUBLISH_TIMEOUT_SECONDS="2",
        HIKER_PUBLISH_LINGER_MS="0",
    )
    users = [f"1555000{n:04d}" for n in range(8 * SCALE)]
    messages = [text_message(user, "hello") for user in users]
    private_rabbitmq.raise_disk_alarm()
    try:
        # The first publish after the alarm is what makes RabbitMQ block the connection (it
        # tells a connection when it publishes): it times out, 503. Ingress knows it now.
        assert await pipeline.post(webhook_body(messages_change([messages[0]]))) == 503
        await until(lambda: _not(ready(pipeline, "ingress-ops")), 10, "ingress not ready")
        for message in messages[1:]:
            assert await pipeline.post(webhook_body(messages_change([message]))) == 503
        ingress = await pipeline.metrics("ingress-ops")
        assert metric_value(ingress, "hiker_broker_blocked") == 1
    finally:
        private_rabbitmq.clear_disk_alarm()
    await until(lambda: ready(pipeline, "ingress-ops"), 30, "ingress ready again")
    # Nothing written while blocked lands now; the one publish RabbitMQ read as it blocked may.
    await asyncio.sleep(1.0)  # let a late publish, if any, reach the queue before counting
    landed = await queue_depth(url, INBOUND)
    assert landed <= 1, landed
    # Meta retries every webhook that got a 503: each lands, none is refused.
    for message in messages:
        assert await pipeline.post(webhook_body(messages_change([message]))) == 200
    assert await queue_depth(url, INBOUND) == landed + len(messages)


async def test_consumers_hold_what_they_cannot_publish_and_answer_once_after(
    make_pipeline: PipelineFactory, private_rabbitmq: PrivateRabbitMQ
) -> None:
    url = private_rabbitmq.new_vhost()
    pipeline = await make_pipeline(
        services=("graph", "ingress", "sender"),
        HIKER_AMQP_URL=url,
        HIKER_PUBLISH_TIMEOUT_SECONDS="2",
        HIKER_IDLE_TIMEOUT_SECONDS="300",
    )
    users = [f"1555001{n:04d}" for n in range(5 * SCALE)]
    for user in users:
        await pipeline.say(user, "hello")
    private_rabbitmq.raise_disk_alarm()
    try:
        # Conversation starts during the alarm: its deliveries arrive (consuming is not
        # blocked), its replies cannot be published, so it holds them and says so.
        from tests.integration.conftest import start_service

        starting = asyncio.create_task(start_service(pipeline, "conversation"))
        await until(lambda: _held(pipeline), 30, "conversation to hold messages it cannot answer")
        assert not await ready(pipeline, "conversation")
        assert await pipeline.sent() == []
    finally:
        private_rabbitmq.clear_disk_alarm()
    await starting
    for user in users:
        assert await pipeline.wait_for_texts(user, 1, within=30) == ["hello to you too"]
    await until(lambda: _zero(queue_depth(url, INBOUND)), 30, "inbound acked")
    conversation = await pipeline.metrics("conversation")
    assert metric_value(conversation, "hiker_duplicates_dropped_total") == 0
    await asyncio.sleep(1.0)
    for user in users:
        assert await pipeline.texts(user) == ["hello to you too"]


async def _not(check: Awaitable[bool]) -> bool:
    return not await check


async def _zero(depth: Awaitable[int]) -> bool:
    return await depth == 0


async def _held(pipeline: Pipeline) -> bool:
    if "conversation" not in pipeline.servers:
        return False
    text = await pipeline.metrics("conversation")
    return metric_value(text, "hiker_messages_held") > 0
