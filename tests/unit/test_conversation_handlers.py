"""Conversation's decisions on fakes: every branch of an inbound message and of a fired timer."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from hiker.conversation.handlers import ConversationHandlers, ResponderTimedOut
from hiker.conversation.memory import Conversation, Reminder
from hiker.conversation.metrics import ConversationMetrics
from hiker.conversation.responder import RuleBookResponder, as_responder
from hiker.conversation.rules import NumberPolicy
from hiker.conversation.rulesfile import RuleSource, default_rulebook
from hiker.conversation.timers import SERVICE_WINDOW_SECONDS
from hiker.core.actions import Template, Text
from hiker.core.contracts import MessageReceived, StatusReceived, TimerScheduled
from hiker.core.errors import PublishFailed, RetryLater
from hiker.core.keys import Keys
from hiker.core.requests import Remind
from tests.fakes import Clock, InMemoryClaims, InMemoryConversations, Published

PNID = "100000000000001"
IDLE = 600.0


class World:
    def __init__(
        self,
        policy: NumberPolicy | None = None,
        responder: Any = None,
        responder_timeout: float | None = None,
    ) -> None:
        self.clock = Clock()
        self.claims = InMemoryClaims(self.clock, lease_seconds=30, done_ttl_seconds=3600)
        self.conversations = InMemoryConversations()
        self.published = Published()
        self.keys = Keys("t:")
        book = default_rulebook("are you there", IDLE)
        if policy is not None:
            book = replace(book, default=policy)
        self.rules = RuleSource(book)
        self.registry = CollectorRegistry()
        self.handlers = ConversationHandlers(
            rules=self.rules,
            responder=as_responder(responder or RuleBookResponder(self.rules)),
            conversations=self.conversations,
            claims=self.claims,
            keys=self.keys,
            send=self.published.send,
            schedule=self.published.schedule,
            metrics=ConversationMetrics(self.registry),
            responder_timeout_seconds=responder_timeout,
            clock=self.clock,
        )

    def message(
        self, wamid: str, text: str = "hello", user: str = "15550001111"
    ) -> MessageReceived:
        return MessageReceived(
            wamid=wamid,
            phone_number_id=PNID,
            user=user,
            message_type="text",
            text=text,
            timestamp=int(self.clock()),
            received_at=self.clock(),
        )

    def counted(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


async def test_a_new_message_is_answered_and_starts_its_timer() -> None:
    world = World()
    await world.handlers.on_message(world.message("w1"))
    [reply] = world.published.sends
    assert (reply.actions, reply.kind, reply.idempotency_key, reply.to) == (
        (Text(body="hello to you too"),),
        "reply",
        "reply:w1",
        "15550001111",
    )
    [(timer, delay)] = world.published.timers
    assert (timer.wamid, delay, timer.due_at) == ("w1", IDLE, world.clock() + IDLE)
    assert world.claims.get(world.keys.claim(PNID, "15550001111", "w1")) == b"done"


async def test_a_duplicate_is_dropped_without_a_reply_or_a_timer() -> None:
    world = World()
    await world.handlers.on_message(world.message("w1"))
    await world.handlers.on_message(world.message("w1"))
    assert len(world.published.sends) == len(world.published.timers) == 1
    assert world.counted("hiker_duplicates_dropped_total") == 1


async def test_a_message_claimed_by_a_live_worker_is_retried_later() -> None:
    world = World()
    other = await world.claims.claim(
        world.keys.claim(PNID, "15550001111", "w1")
    )  # another replica, still at it
    with pytest.raises(RetryLater):
        await world.handlers.on_message(world.message("w1"))
    assert world.published.sends == []
    await other.release()
    await world.handlers.on_message(world.message("w1"))
    assert len(world.published.sends) == 1


async def test_a_crashed_workers_claim_expires_and_the_message_is_not_a_duplicate() -> None:
    world = World()
    await world.claims.claim(
        world.keys.claim(PNID, "15550001111", "w1")
    )  # taken, then its worker died
    world.clock.advance(31)
    await world.handlers.on_message(world.message("w1"))
    assert len(world.published.sends) == 1


async def test_an_older_message_arriving_late_is_answered_but_moves_no_timer() -> None:
    world = World()
    older = world.message("w1")
    world.clock.advance(5)
    await world.handlers.on_message(world.message("w2"))
    await world.handlers.on_message(older)
    assert [s.idempotency_key for s in world.published.sends] == ["reply:w2", "reply:w1"]
    assert [t.wamid for t, _ in world.published.timers] == ["w2"]


async def test_a_reply_handled_after_the_service_window_is_skipped() -> None:
    world = World()
    late = world.message("w1")
    world.clock.advance(SERVICE_WINDOW_SECONDS + 1)
    await world.handlers.on_message(late)
    assert world.published.sends == []
    assert world.counted("hiker_sends_skipped_total", kind="reply", reason="window_closed") == 1


async def test_a_failed_publish_releases_the_claim_for_the_redelivery() -> None:
    world = World()
    world.published.failing = PublishFailed("nack")
    with pytest.raises(PublishFailed):
        await world.handlers.on_message(world.message("w1"))
    world.published.failing = None
    await world.handlers.on_message(world.message("w1"))  # the redelivery is no duplicate
    assert len(world.published.sends) == 1


async def test_statuses_never_touch_a_timer() -> None:
    world = World()
    status = StatusReceived(
        message_id="wamid.OUT1", phone_number_id=PNID, status="read", received_at=1.0
    )
    await world.handlers.on_status(status)
    assert world.published.sends == world.published.timers == []


async def fired(world: World, wamid: str) -> TimerScheduled:
    [(timer, delay)] = [(t, d) for t, d in world.published.timers if t.wamid == wamid]
    world.clock.advance(delay)
    await world.handlers.on_timer_fired(timer)
    return timer


async def test_a_quiet_user_gets_the_followup_once_even_if_the_timer_comes_twice() -> None:
    world = World()
    await world.handlers.on_message(world.message("w1"))
    timer = await fired(world, "w1")
    await world.handlers.on_timer_fired(timer)  # dead-lettered at least once: may come twice
    followups = [s for s in world.published.sends if s.kind == "followup"]
    assert [(f.actions, f.idempotency_key) for f in followups] == [
        ((Text(body="are you there"),), "followup:w1")
    ]


async def test_a_timer_superseded_by_a_newer_message_sends_nothing() -> None:
    world = World()
    await world.handlers.on_message(world.message("w1"))
    world.clock.advance(10)
    await world.handlers.on_message(world.message("w2", text="thanks"))
    await fired(world, "w1")
    assert [s.kind for s in world.published.sends] == ["reply"]
    assert world.counted("hiker_timers_superseded_total") == 1


async def test_a_followup_outside_the_window_is_the_template_or_nothing() -> None:
    template = Template(name="we_miss_you", language="en_US")
    for policy, expected in (
        (NumberPolicy("are you there", SERVICE_WINDOW_SECONDS + 60, template), template),
        (NumberPolicy("are you there", SERVICE_WINDOW_SECONDS + 60), None),
    ):
        world = World(policy)
        await world.handlers.on_message(world.message("w1"))
        await fired(world, "w1")
        followups = [s for s in world.published.sends if s.kind == "followup"]
        assert [f.actions for f in followups] == ([(expected,)] if expected else [])


class Counting:
    """A responder with memory: counts the user's messages in the state, and reminds."""

    def __init__(self, remind: Remind | None = None) -> None:
        self.remind = remind
        self.seen_history: list[list[str | None]] = []
        self.reminders: list[Reminder] = []

    async def respond(self, message: MessageReceived, conversation: Conversation) -> Any:
        conversation.state["n"] = conversation.state.get("n", 0) + 1
        self.seen_history.append([t.text for t in await conversation.history()])
        answer: list[Any] = [Text(body=f"message {conversation.state['n']}")]
        if self.remind is not None:
            answer.append(self.remind)
        return answer

    async def on_reminder(self, reminder: Reminder, conversation: Conversation) -> Any:
        self.reminders.append(reminder)
        conversation.state["nudged"] = True
        return Text(body=f"still there? ({reminder.data.get('step')})")


def world_with(responder: Any) -> World:
    return World(responder=responder)


def texts(world: World) -> list[str]:
    return [a.body for s in world.published.sends for a in s.actions if isinstance(a, Text)]


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


class SlowOnce(Counting):
    """A responder that, the first time it is asked (a message, then a reminder), changes the
    state and then runs far past its deadline; it answers at once when asked again."""

    def __init__(self, remind: Remind | None = None) -> None:
        super().__init__(remind)
        self.stalled: set[str] = set()

    async def _stall_once(self, what: str, conversation: Conversation) -> None:
        if what not in self.stalled:
            self.stalled.add(what)
            conversation.state["half-done"] = True
            await asyncio.sleep(30)

    async def respond(self, message: MessageReceived, conversation: Conversation) -> Any:
        await self._stall_once("message", conversation)
        return await super().respond(message, conversation)

    async def on_reminder(self, reminder: Reminder, conversation: Conversation) -> Any:
        await self._stall_once("reminder", conversation)
        return await super().on_reminder(reminder, conversation)


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
