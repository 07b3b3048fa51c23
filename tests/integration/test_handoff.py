"""A person owns a conversation: the bot stays silent for that user only, across a restart and
across replicas, until the handoff ends by itself or is given back; the person's sends go out.
Likewise while another app owns the user's thread through Meta's Conversation Routing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pytest
from redis.asyncio import Redis

from hiker.conversation.app import create_app as create_conversation
from hiker.conversation.memory import Conversation
from hiker.conversation.responder import Answer
from hiker.conversation.routing import ROUTING_REASON
from hiker.core.actions import Text
from hiker.core.claim_marks import DONE
from hiker.core.contracts import MessageReceived, OwnerChanged
from hiker.core.keys import Keys
from hiker.core.ownership import OwnershipStore
from hiker.core.requests import Handoff
from hiker.core.settings import ConversationSettings, load_settings
from hiker.tools.simulate import DEFAULT_PHONE_NUMBER_ID as PHONE_NUMBER_ID
from hiker.tools.simulate import handover_change, standby_change, text_message, webhook_body
from tests.integration.conftest import Pipeline, PipelineFactory, ServiceProcess

pytestmark = pytest.mark.integration

SKIPPED_HUMAN = 'hiker_sends_skipped_total{kind="reply",reason="human_owned"}'


async def wait_until_handled(redis_url: str, keys: Keys, user: str, wamid: str) -> None:
    """Until conversation has confirmed its claim on ``wamid``: the message is handled, so
    what it was going to send (nothing, under a handoff) is sent already."""
    client = Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if await client.get(keys.claim(PHONE_NUMBER_ID, user, wamid)) == DONE:
                return
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()
    raise AssertionError(f"message {wamid} was not handled")


async def hand_over(redis_url: str, keys: Keys, user: str, seconds: float) -> float:
    """What ``POST .../handoff`` does (tested through the api below); when it ends."""
    client = Redis.from_url(redis_url)
    try:
        owned = await OwnershipStore(client, keys).hand_to_person(
            PHONE_NUMBER_ID, user, seconds=seconds, reason="test", now=time.time()
        )
    finally:
        await client.aclose()
    assert owned.until is not None
    return owned.until


async def wait_for_owner(redis_url: str, keys: Keys, user: str, reason: str | None) -> None:
    """Until the conversation is handed over for ``reason`` (None: owned by the bot)."""
    client = Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + 15
        while (await OwnershipStore(client, keys).read(PHONE_NUMBER_ID, user)).reason != reason:
            assert time.monotonic() < deadline, f"the owner's reason never became {reason!r}"
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()


async def route_thread(pipeline: Pipeline, user: str, control: Literal["taken", "passed"]) -> None:
    """Meta's ``messaging_handovers`` notice: another app took ``user``'s thread, or it was
    passed back to this one."""
    assert await pipeline.post(webhook_body(handover_change(user, control))) == 200


async def say_standby(pipeline: Pipeline, user: str, text: str) -> str:
    """A standby copy of ``user``'s message (another app owns the thread); its wamid."""
    message = text_message(user, text)
    assert await pipeline.post(webhook_body(standby_change([message]))) == 200
    return str(message["id"])


async def test_handoff_holds_across_a_restart_and_ends_by_itself(
    make_pipeline: PipelineFactory,
    spawn: Callable[[str, dict[str, str]], ServiceProcess],
    redis_url: str,
    redis_prefix: str,
) -> None:
    pipeline = await make_pipeline(
        services=("graph", "ingress", "sender"), HIKER_IDLE_TIMEOUT_SECONDS="1.5"
    )
    keys = Keys(redis_prefix)
    conversation = spawn("conversation", pipeline.env)
    await conversation.start()
    user = "15550001003"
    await pipeline.say(user, "hello")
    assert await pipeline.wait_for_texts(user, 1) == ["hello to you too"]
    # Taken while the idle timer of "hello" waits: that follow-up is never sent.
    until = await hand_over(redis_url, keys, user, seconds=6)
    await conversation.kill()
    restarted = spawn("conversation", pipeline.env)
    await restarted.start()
    held = await pipeline.say(user, "hello")
    await wait_until_handled(redis_url, keys, user, held)
    assert await pipeline.texts(user) == ["hello to you too"]

    await asyncio.sleep(max(0.0, until - time.time()) + 0.1)  # to the handoff's end, no longer
    await pipeline.say(user, "hello")
    # The bot answers again and its idle period starts afresh: one follow-up, after that.
    assert await pipeline.wait_for_texts(user, 3) == [
        "hello to you too",
        "hello to you too",
        "are you there",
    ]
    await asyncio.sleep(2.0)
    assert await pipeline.texts(user) == ["hello to you too", "hello to you too", "are you there"]


async def test_a_followup_due_while_a_person_owns_it_is_not_sent_after_either(
    make_pipeline: PipelineFactory, redis_url: str, redis_prefix: str
) -> None:
    pipeline = await make_pipeline(HIKER_IDLE_TIMEOUT_SECONDS="1")
    keys = Keys(redis_prefix)
    user = "15550001004"
    await pipeline.say(user, "hello")
    assert await pipeline.wait_for_texts(user, 1) == ["hello to you too"]
    until = await hand_over(redis_url, keys, user, seconds=2)
    # The timer fires during the handoff; the user never writes again.
    await asyncio.sleep(max(0.0, until - time.time()) + 1.5)
    assert await pipeline.texts(user) == ["hello to you too"]
    assert 'hiker_sends_skipped_total{kind="followup",reason="human_owned"} 1.0' in (
        await pipeline.metrics("conversation")
    )


@pytest.mark.parametrize("way", ["api", "routing"])
async def test_two_replicas_both_leave_the_handed_conversation_alone(
    way: str, make_pipeline: PipelineFactory, redis_url: str, redis_prefix: str
) -> None:
    pipeline = await make_pipeline(HIKER_IDLE_TIMEOUT_SECONDS="60")
    await pipeline.start(
        "conversation-2",
        create_conversation(load_settings(ConversationSettings, pipeline.env)),
    )
    keys = Keys(redis_prefix)
    alice, bob = "15550001005", "15550001006"
    if way == "api":
        await hand_over(redis_url, keys, alice, seconds=60)
        held = [await pipeline.say(alice, "hello") for _ in range(8)]
    else:
        # Another app took the thread: the user's messages now come as standby copies.
        await route_thread(pipeline, alice, "taken")
        await wait_for_owner(redis_url, keys, alice, ROUTING_REASON)
        held = [await say_standby(pipeline, alice, "hello") for _ in range(8)]
    for i in range(4):
        await pipeline.say(bob, "hello", wamid=f"wamid.bob-{i}")
    for wamid in held:
        await wait_until_handled(redis_url, keys, alice, wamid)
    assert await pipeline.wait_for_texts(bob, 4) == ["hello to you too"] * 4
    assert await pipeline.texts(alice) == []
    # Both replicas count the one conversation a person owns (sampled from Redis), then none.
    await wait_for_gauge(pipeline, ("conversation", "conversation-2"), 1)
    if way == "api":
        client = Redis.from_url(redis_url)
        try:
            await OwnershipStore(client, keys).give_back(PHONE_NUMBER_ID, alice, now=time.time())
        finally:
            await client.aclose()
    else:
        await route_thread(pipeline, alice, "passed")
    await wait_for_gauge(pipeline, ("conversation", "conversation-2"), 0)
    await pipeline.say(alice, "hello")
    assert await pipeline.wait_for_texts(alice, 1) == ["hello to you too"]


@pytest.mark.parametrize("back", ["passed", "release"])
async def test_a_thread_another_app_took_holds_across_a_restart_until_it_comes_back(
    back: str,
    make_pipeline: PipelineFactory,
    spawn: Callable[[str, dict[str, str]], ServiceProcess],
    redis_url: str,
    redis_prefix: str,
) -> None:
    pipeline = await make_pipeline(
        services=("graph", "ingress", "sender"), HIKER_IDLE_TIMEOUT_SECONDS="1.5"
    )
    keys = Keys(redis_prefix)
    conversation = spawn("conversation", pipeline.env)
    await conversation.start()
    user, other = "15550001014", "15550001015"
    await pipeline.say(user, "hello")
    assert await pipeline.wait_for_texts(user, 1) == ["hello to you too"]
    # Taken while the idle timer of "hello" waits: that follow-up is never sent.
    await route_thread(pipeline, user, "taken")
    await wait_for_owner(redis_url, keys, user, ROUTING_REASON)
    await conversation.kill()
    restarted = spawn("conversation", pipeline.env)
    await restarted.start()
    held = await say_standby(pipeline, user, "hello")
    await pipeline.say(other, "hello")
    await wait_until_handled(redis_url, keys, user, held)
    # The other user's follow-up went out: the user's timer, set earlier in the same wait
    # queue, came out of it before, and sent nothing (dropped as silenced or superseded).
    assert await pipeline.wait_for_texts(other, 2) == ["hello to you too", "are you there"]
    assert await pipeline.texts(user) == ["hello to you too"]
    # The standby copy is in the conversation's history all the same.
    client = Redis.from_url(redis_url)
    try:
        history = await client.lrange(keys.history(PHONE_NUMBER_ID, user), 0, -1)
    finally:
        await client.aclose()
    assert any(held.encode() in entry for entry in history)

    if back == "passed":
        await route_thread(pipeline, user, "passed")
        await wait_for_owner(redis_url, keys, user, None)
    # Released, the thread's next message comes to this app on the messages field: answered.
    await pipeline.say(user, "hello")
    assert await pipeline.wait_for_texts(user, 2) == ["hello to you too", "hello to you too"]
    await wait_for_owner(redis_url, keys, user, None)


async def wait_for_gauge(pipeline: Pipeline, replicas: tuple[str, ...], count: int) -> None:
    line = f"hiker_conversations_human_owned {float(count)}"
    deadline = time.monotonic() + 15  # sampled every 5 s
    while True:
        texts = [await pipeline.metrics(name) for name in replicas]
        if all(line in text.splitlines() for text in texts):
            return
        assert time.monotonic() < deadline, f"{line} not reported by every replica"
        await asyncio.sleep(0.2)


async def test_a_rule_hands_over_after_its_reply_and_the_bot_stays_silent(
    make_pipeline: PipelineFactory, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n"
        "  - {name: hello, match: exact, pattern: hello, reply: hello to you too}\n"
        "  - name: agent\n    match: exact\n    pattern: agent\n"
        "    reply: A person will answer you shortly\n"
        "    handoff: {minutes: 30, reason: asked for a person}\n"
    )
    pipeline = await make_pipeline(HIKER_RULES_FILE=str(rules), HIKER_IDLE_TIMEOUT_SECONDS="1")
    keys = Keys(redis_prefix)
    user, other = "15550001007", "15550001008"
    await pipeline.say(user, "agent")
    assert await pipeline.wait_for_texts(user, 1) == ["A person will answer you shortly"]
    held = await pipeline.say(user, "hello")
    await pipeline.say(other, "hello")
    await wait_until_handled(redis_url, keys, user, held)
    assert await pipeline.wait_for_texts(other, 2) == ["hello to you too", "are you there"]
    # The idle timeout (1 s) passed for both: only the user nobody owns was followed up.
    assert await pipeline.texts(user) == ["A person will answer you shortly"]
    client = Redis.from_url(redis_url)
    try:
        owner = await OwnershipStore(client, keys).read(PHONE_NUMBER_ID, user)
    finally:
        await client.aclose()
    assert owner.reason == "asked for a person"
    assert owner.until is not None
    assert 29 * 60 < owner.until - time.time() <= 30 * 60
    assert 'hiker_handoffs_total{reason="action"} 1.0' in await pipeline.metrics("conversation")


class HandsOverOnRefund:
    """A responder that answers, and on "refund" also hands the conversation to a person."""

    async def respond(self, message: MessageReceived, conversation: Conversation) -> Answer:
        if message.text == "refund":
            return [Text(body="Passing you to our team"), Handoff(minutes=10, reason="refund")]
        return Text(body="bot here")


async def test_a_responder_hands_over_with_its_answer(
    make_pipeline: PipelineFactory, redis_url: str, redis_prefix: str
) -> None:
    pipeline = await make_pipeline(services=("graph", "ingress", "sender"))
    await pipeline.start(
        "conversation",
        create_conversation(
            load_settings(ConversationSettings, pipeline.env), responder=HandsOverOnRefund()
        ),
    )
    keys = Keys(redis_prefix)
    user, other = "15550001009", "15550001011"
    await pipeline.say(user, "refund")
    assert await pipeline.wait_for_texts(user, 1) == ["Passing you to our team"]
    held = await pipeline.say(user, "anyone?")
    await pipeline.say(other, "anyone?")
    await wait_until_handled(redis_url, keys, user, held)
    assert await pipeline.wait_for_texts(other, 1) == ["bot here"]
    assert await pipeline.texts(user) == ["Passing you to our team"]


async def test_routing_gives_back_only_what_routing_took(redis_url: str, redis_prefix: str) -> None:
    told: list[OwnerChanged] = []

    async def announce(change: OwnerChanged) -> None:
        told.append(change)

    client = Redis.from_url(redis_url)
    try:
        store = OwnershipStore(client, Keys(redis_prefix), announce=announce)
        agent, routed, now = "15550001016", "15550001017", time.time()
        await store.hand_to_person(PHONE_NUMBER_ID, agent, seconds=600, reason="refund", now=now)
        await store.hand_to_person(
            PHONE_NUMBER_ID, routed, seconds=600, reason=ROUTING_REASON, now=now, way="routing"
        )
        for user in (agent, routed):
            await store.give_back(
                PHONE_NUMBER_ID, user, now=now + 1, way="routing", only_reason=ROUTING_REASON
            )
        agent_owner, routed_owner = await store.read_many(
            [(PHONE_NUMBER_ID, agent), (PHONE_NUMBER_ID, routed)]
        )
        assert await store.count_owned(now + 2) == 1
    finally:
        await client.aclose()
    assert (agent_owner.reason, routed_owner.reason, routed_owner.until) == ("refund", None, None)
    assert [(c.user, c.owner, c.way) for c in told] == [
        (agent, "human", "api"),
        (routed, "human", "routing"),
        (routed, "bot", "routing"),
    ]
