"""Conversation memory against the real broker and Redis: state that two replicas cannot
corrupt, reminders that survive a restart and fire once, cancelled by the user writing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from hiker.core import topology
from hiker.tools.simulate import messages_change, text_message, webhook_body
from tests.integration.conftest import (
    Pipeline,
    PipelineFactory,
    ServiceProcess,
    metric_value,
    queue_depth,
    start_service,
)

pytestmark = pytest.mark.integration

BOT = {
    "HIKER_RESPONDER": "tests.integration.bots:counting",
    "HIKER_IDLE_TIMEOUT_SECONDS": "600",
    # One user writes many messages here; Meta's pair rate pacing would spread the replies.
    "HIKER_USER_SEND_INTERVAL_SECONDS": "0",
}


async def test_two_replicas_answering_one_user_lose_no_update_of_the_state(
    make_pipeline: PipelineFactory,
) -> None:
    pipeline = await make_pipeline(**BOT)
    twin = Pipeline(env=pipeline.env, session=pipeline.session, servers={})
    await start_service(twin, "conversation")
    for name, server in twin.servers.items():
        pipeline.servers[f"{name}-2"] = server
    user = "15550400001"
    count = 24
    # Waves of webhooks a little further apart than ingress's linger: several bundles, which
    # the broker hands to both replicas, answering the one user's messages at the same time.
    bodies = [webhook_body(messages_change([text_message(user, f"m{n}")])) for n in range(count)]
    waves = [
        asyncio.ensure_future(post_all(pipeline, bodies[n : n + 4], after=n / 4 * 0.03))
        for n in range(0, count, 4)
    ]
    for wave in waves:
        assert await wave == [200] * 4
    texts = await pipeline.wait_for_texts(user, count, within=60)
    assert sorted(texts, key=lambda t: int(t.split()[1])) == [
        f"message {n}" for n in range(1, count + 1)
    ]  # every count once: no update lost, none applied twice
    await asyncio.sleep(0.5)
    assert len(await pipeline.texts(user)) == count
    handled = [
        metric_value(await pipeline.metrics(name), "hiker_inbound_messages_total", type="text")
        for name in ("conversation", "conversation-2")
    ]
    assert min(handled) > 0, f"one replica did all the work ({handled}): nothing raced"


async def post_all(pipeline: Pipeline, bodies: list[dict[str, Any]], after: float) -> list[int]:
    """Post ``bodies`` at once, ``after`` seconds from now."""
    await asyncio.sleep(after)
    return list(await asyncio.gather(*(pipeline.post(body) for body in bodies)))


async def test_a_reminder_survives_a_conversation_restart_and_fires_once(
    make_pipeline: PipelineFactory, spawn: Callable[[str, dict[str, str]], ServiceProcess]
) -> None:
    pipeline = await make_pipeline(services=("graph", "ingress", "sender"), **BOT)
    conversation = spawn("conversation", pipeline.env)
    await conversation.start()
    user = "15550400002"
    await pipeline.say(user, "remind 3")
    assert await pipeline.wait_for_texts(user, 1) == ["message 1"]
    await conversation.kill()  # the reminder waits in the broker, not in the dead process
    await asyncio.sleep(1)
    restarted = spawn("conversation", pipeline.env)
    await restarted.start()
    texts = await pipeline.wait_for_texts(user, 2, within=20)
    assert texts == ["message 1", "reminded remind after 1 (2)"]
    await asyncio.sleep(1.5)
    assert len(await pipeline.texts(user)) == 2


async def test_a_reply_cancels_a_reminder_unless_it_keeps(
    make_pipeline: PipelineFactory, amqp_url: str
) -> None:
    pipeline = await make_pipeline(**BOT)
    quiet, kept = "15550400003", "15550400004"
    await pipeline.say(quiet, "remind 2")
    await pipeline.say(kept, "keep 2")
    assert await pipeline.wait_for_texts(quiet, 1) == ["message 1"]
    assert await pipeline.wait_for_texts(kept, 1) == ["message 1"]
    await pipeline.say(quiet, "I am here")
    await pipeline.say(kept, "I am here")
    assert await pipeline.wait_for_texts(kept, 3, within=15) == [
        "message 1",
        "message 2",
        "reminded keep after 1 (2)",
    ]
    await asyncio.sleep(1.0)  # the cancelled one is due by now too
    assert await pipeline.texts(quiet) == ["message 1", "message 2"]
    assert await queue_depth(amqp_url, topology.POISON_QUEUE) == 0


async def test_the_example_signup_bot_keeps_its_form_and_nudges_a_quiet_user(
    make_pipeline: PipelineFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hiker.examples import signup
    from hiker.tools.simulate import button_reply_message

    monkeypatch.setattr(signup, "NUDGE_AFTER_SECONDS", 1.5)
    pipeline = await make_pipeline(
        HIKER_BOT="hiker.examples.signup:bot", HIKER_IDLE_TIMEOUT_SECONDS="600"
    )
    done, quiet = "15550400010", "15550400011"
    for user in (done, quiet):
        await pipeline.say(user, "sign up")
    await pipeline.say(done, "Ana")
    await pipeline.wait_for_texts(done, 2)
    tap = button_reply_message(done, "plan-pro", "Pro")
    assert await pipeline.post(webhook_body(messages_change([tap]))) == 200
    assert (await pipeline.wait_for_texts(done, 3))[-1] == "All set, Ana: the Pro plan."
    nudged = await pipeline.wait_for_texts(quiet, 2, within=15)
    assert nudged[1].startswith("Still there?")
    await asyncio.sleep(2.0)  # Ana answered every question: her nudge was cancelled
    assert len(await pipeline.texts(done)) == 3
