"""What a responder keeps and asks of conversation, on the fakes: state across turns and
replicas, reminders, and the deadline a responder answers within."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from hiker.conversation.handlers import ConversationHandlers, ResponderTimedOut
from hiker.conversation.memory import Conversation, Reminder
from hiker.conversation.metrics import ConversationMetrics
from hiker.conversation.responder import as_responder
from hiker.conversation.timers import SERVICE_WINDOW_SECONDS
from hiker.core.actions import Template, Text
from hiker.core.contracts import MessageReceived
from hiker.core.errors import PublishFailed, RetryLater
from hiker.core.requests import Remind
from tests.unit.conversation_world import PNID, Counting, SlowOnce, World, texts, world_with


async def test_state_carries_across_turns_and_history_holds_both_ways() -> None:
    responder = Counting()
    world = world_with(responder)
    for n in range(3):
        await world.handlers.on_message(world.message(f"w{n}", text=f"hi {n}"))
        world.clock.advance(1)
    assert texts(world) == ["message 1", "message 2", "message 3"]
    assert responder.seen_history[2] == ["hi 0", "message 1", "hi 1", "message 2", "hi 2"]


async def test_two_replicas_racing_on_one_users_state_lose_no_update() -> None:
    world = world_with(Counting())
    other = ConversationHandlers(  # another replica: its own process, the same Redis
        rules=world.rules,
        responder=as_responder(Counting()),
        conversations=world.conversations,
        claims=world.claims,
        keys=world.keys,
        send=world.published.send,
        schedule=world.published.schedule,
        metrics=ConversationMetrics(CollectorRegistry()),
        clock=world.clock,
    )
    original_save = world.conversations.save_state

    async def other_saved_first(*args: Any, **kwargs: Any) -> bool:
        # It answers a second message of the user between our read and our save.
        world.conversations.save_state = original_save  # type: ignore[method-assign]
        await other.on_message(world.message("w-other", text="from the other"))
        return await original_save(*args, **kwargs)

    world.conversations.save_state = other_saved_first  # type: ignore[method-assign]
    with pytest.raises(RetryLater):
        await world.handlers.on_message(world.message("w1"))
    await world.handlers.on_message(world.message("w1"))  # retried on the fresh state
    assert world.conversations.states[(PNID, "15550001111")][1] == {"n": 2}
    assert sorted(texts(world)) == ["message 1", "message 2"]


async def test_messages_of_one_user_in_one_bundle_are_answered_one_at_a_time() -> None:
    world = world_with(Counting())
    await asyncio.gather(*(world.handlers.on_message(world.message(f"w{n}")) for n in range(5)))
    assert texts(world) == [f"message {n}" for n in range(1, 6)]  # no conflict, in order
    assert world.counted("hiker_state_conflicts_total") == 0


async def test_a_message_retried_after_its_save_is_answered_as_the_first_time() -> None:
    world = world_with(Counting())
    world.published.failing = PublishFailed("broker away")  # saved, then the reply not taken
    with pytest.raises(PublishFailed):
        await world.handlers.on_message(world.message("w1"))
    world.published.failing = None
    await world.handlers.on_message(world.message("w1"))
    assert texts(world) == ["message 1"]  # not "message 2": the save is not applied twice
    assert world.conversations.states[(PNID, "15550001111")][1] == {"n": 1}


async def test_a_reminder_comes_back_once_with_its_data_when_the_user_stays_quiet() -> None:
    responder = Counting(Remind(after_seconds=600, key="nudge", data={"step": 1}))
    world = world_with(responder)
    await world.handlers.on_message(world.message("w1"))
    reminders = [t for t, _ in world.published.timers if t.reminder == "nudge"]
    [timer] = reminders
    world.clock.advance(600)
    await world.handlers.on_timer_fired(timer)
    await world.handlers.on_timer_fired(timer)  # dead-lettered at least once: may come twice
    assert [(r.key, r.data) for r in responder.reminders] == [("nudge", {"step": 1})]
    assert texts(world)[-1] == "still there? (1)"
    assert world.conversations.states[(PNID, "15550001111")][1] == {"n": 1, "nudged": True}


async def test_a_new_message_cancels_a_reminder_unless_it_keeps() -> None:
    for keep, expected in ((False, []), (True, ["nudge"])):
        responder = Counting(Remind(after_seconds=60, key="nudge", keep=keep))
        world = world_with(responder)
        await world.handlers.on_message(world.message("w1"))
        [timer] = [t for t, _ in world.published.timers if t.reminder == "nudge"]
        responder.remind = None
        world.clock.advance(10)
        await world.handlers.on_message(world.message("w2", text="I am here"))
        world.clock.advance(60)
        await world.handlers.on_timer_fired(timer)
        assert [r.key for r in responder.reminders] == expected


async def test_a_long_reminder_travels_in_hops_on_a_bounded_ladder_and_fires_on_time() -> None:
    responder = Counting(Remind(after_seconds=23 * 3600, key="last-call"))
    world = world_with(responder)
    await world.handlers.on_message(world.message("w1"))
    [(timer, hop)] = [(t, d) for t, d in world.published.timers if t.reminder]
    hops = []
    while not responder.reminders:
        assert hop <= timer.due_at - world.clock() + 1e-6  # never past its due time
        hops.append(hop)
        world.clock.advance(hop)
        before = len(world.published.timers)
        await world.handlers.on_timer_fired(timer)
        if len(world.published.timers) > before:
            timer, hop = world.published.timers[-1]
    assert len(hops) < 12
    assert world.clock() == pytest.approx(timer.due_at, abs=1.0)


async def test_a_reminder_outside_the_window_sends_only_templates() -> None:
    class Late(Counting):
        async def on_reminder(self, reminder: Reminder, conversation: Conversation) -> Any:
            assert not conversation.window_open
            template = Template(name="we_miss_you", language="en")
            return [Text(body="a text Meta would refuse"), template]

    responder = Late(Remind(after_seconds=SERVICE_WINDOW_SECONDS + 60, key="later"))
    world = world_with(responder)
    await world.handlers.on_message(world.message("w1"))
    [(timer, _)] = [(t, d) for t, d in world.published.timers if t.reminder]
    world.clock.now = timer.due_at
    await world.handlers.on_timer_fired(timer)
    assert world.published.sends[-1].actions == (Template(name="we_miss_you", language="en"),)


async def test_a_responder_past_its_deadline_is_asked_again_and_answers_once() -> None:
    world = World(responder=SlowOnce(), responder_timeout=0.05)
    with pytest.raises(ResponderTimedOut):  # held and retried by the consumer: a RetryLater
        await world.handlers.on_message(world.message("w1"))
    assert world.published.sends == []
    assert world.published.timers == []
    assert world.counted("hiker_responder_timeouts_total", kind="message") == 1
    await world.handlers.on_message(world.message("w1"))  # its claim was released
    assert texts(world) == ["message 1"]
    assert world.conversations.states[(PNID, "15550001111")][1] == {"n": 1}  # nothing half-done
    await world.handlers.on_message(world.message("w1"))  # and it is done now
    assert texts(world) == ["message 1"]


async def test_a_reminder_past_its_deadline_is_asked_again_and_answers_once() -> None:
    responder = SlowOnce(Remind(after_seconds=600, key="nudge", data={"step": 1}))
    responder.stalled.add("message")
    world = World(responder=responder, responder_timeout=0.05)
    await world.handlers.on_message(world.message("w1"))
    [timer] = [t for t, _ in world.published.timers if t.reminder == "nudge"]
    world.clock.advance(600)
    with pytest.raises(ResponderTimedOut):
        await world.handlers.on_timer_fired(timer)
    assert world.counted("hiker_responder_timeouts_total", kind="reminder") == 1
    await world.handlers.on_timer_fired(timer)
    await world.handlers.on_timer_fired(timer)
    assert texts(world) == ["message 1", "still there? (1)"]


async def test_a_responders_own_timeout_is_not_its_deadline() -> None:
    class CallTimesOut:
        async def respond(self, message: MessageReceived, conversation: Conversation) -> Any:
            raise TimeoutError("the model's API did not answer")

    world = World(responder=CallTimesOut(), responder_timeout=5)
    with pytest.raises(TimeoutError) as caught:
        await world.handlers.on_message(world.message("w1"))
    assert not isinstance(caught.value, RetryLater)
    assert world.counted("hiker_responder_timeouts_total", kind="message") == 0
