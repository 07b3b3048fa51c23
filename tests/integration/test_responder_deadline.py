"""A custom responder that hangs, against the real broker and Redis: it is cut off at its
deadline (two thirds of the claim lease here), the message is held and asked again, and the user
gets one reply; nothing is poisoned."""

from __future__ import annotations

import asyncio
import time

import pytest

from hiker.core import topology
from tests.integration.conftest import PipelineFactory, metric_value, queue_depth

pytestmark = pytest.mark.integration


async def test_a_responder_past_its_deadline_once_answers_the_user_exactly_once(
    make_pipeline: PipelineFactory, amqp_url: str
) -> None:
    pipeline = await make_pipeline(
        HIKER_RESPONDER="tests.integration.bots:slow_once",
        HIKER_CLAIM_LEASE_SECONDS="3",  # the responder gets 2 s
        HIKER_IDLE_TIMEOUT_SECONDS="600",
    )
    user = "15550900001"
    began = time.monotonic()
    await pipeline.say(user, "hello")
    assert await pipeline.wait_for_texts(user, 1, within=30) == ["message 1"]
    assert time.monotonic() - began >= 2.0  # cut off at the deadline, not answered before
    conversation = await pipeline.metrics("conversation")
    assert metric_value(conversation, "hiker_responder_timeouts_total", kind="message") == 1
    await asyncio.sleep(1.0)  # past another lease: nothing more comes
    assert await pipeline.texts(user) == ["message 1"]
    assert await queue_depth(amqp_url, topology.POISON_QUEUE) == 0
