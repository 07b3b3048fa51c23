"""Services are killed and restarted: nothing that mattered was in their memory."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from hiker.core import topology
from tests.integration.conftest import PipelineFactory, ServiceProcess
from tests.support import wait_for_depth

pytestmark = pytest.mark.integration


async def test_conversation_killed_with_a_pending_timer_still_sends_one_followup(
    make_pipeline: PipelineFactory, spawn: Callable[[str, dict[str, str]], ServiceProcess]
) -> None:
    pipeline = await make_pipeline(
        services=("graph", "ingress", "sender"), HIKER_IDLE_TIMEOUT_SECONDS="3"
    )
    conversation = spawn("conversation", pipeline.env)
    await conversation.start()
    user = "15550000008"
    await pipeline.say(user, "hello")
    assert await pipeline.wait_for_texts(user, 1) == ["hello to you too"]
    await conversation.kill()  # the timer is in the broker, not in the dead process
    await asyncio.sleep(1.0)
    restarted = spawn("conversation", pipeline.env)
    await restarted.start()
    assert await pipeline.wait_for_texts(user, 2) == ["hello to you too", "are you there"]
    await asyncio.sleep(3.5)
    assert await pipeline.texts(user) == ["hello to you too", "are you there"]


async def test_conversation_down_when_timer_fires_sends_it_on_return(
    make_pipeline: PipelineFactory, spawn: Callable[[str, dict[str, str]], ServiceProcess]
) -> None:
    pipeline = await make_pipeline(
        services=("graph", "ingress", "sender"), HIKER_IDLE_TIMEOUT_SECONDS="1"
    )
    conversation = spawn("conversation", pipeline.env)
    await conversation.start()
    user = "15550000009"
    await pipeline.say(user, "hello")
    await pipeline.wait_for_texts(user, 1)
    await conversation.kill()
    # The timer fires into the fired queue while nobody consumes it.
    amqp_url = pipeline.env["HIKER_AMQP_URL"]
    await wait_for_depth(amqp_url, topology.CONVERSATION_TIMERS_QUEUE, 1)
    assert await pipeline.texts(user) == ["hello to you too"]
    restarted = spawn("conversation", pipeline.env)
    await restarted.start()
    assert await pipeline.wait_for_texts(user, 2) == ["hello to you too", "are you there"]
    await asyncio.sleep(1.5)
    assert await pipeline.texts(user) == ["hello to you too", "are you there"]


async def test_sigterm_finishes_the_send_in_flight_then_exits(
    make_pipeline: PipelineFactory, spawn: Callable[[str, dict[str, str]], ServiceProcess]
) -> None:
    pipeline = await make_pipeline(
        services=("graph", "ingress", "conversation"), HIKER_IDLE_TIMEOUT_SECONDS="60"
    )
    sender = spawn("sender", pipeline.env)
    await sender.start()
    user = "15550000010"
    await pipeline.script_faults(user, {"status": 200, "delay": 1.5})  # a slow Graph answer
    await pipeline.say(user, "hello")
    await asyncio.sleep(0.7)  # the Graph call is under way
    assert sender.process is not None
    sender.process.terminate()
    assert await asyncio.wait_for(sender.process.wait(), 15) == 0
    # It waited for Graph's answer before leaving: the reply is recorded once, nothing redone.
    assert await pipeline.texts(user) == ["hello to you too"]
    restarted = spawn("sender", pipeline.env)
    await restarted.start()
    await asyncio.sleep(1.5)
    assert await pipeline.texts(user) == ["hello to you too"]
