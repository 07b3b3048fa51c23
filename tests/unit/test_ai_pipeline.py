"""The AI pipeline's decisions on fakes: the debounce's stale check, one call and one reply per
burst, the budget, the retry ladder with Retry-After, giving up, and what a turn asked for."""

from __future__ import annotations

import asyncio

import pytest

from hiker.conversation.ai.budget import spent_out, utc_day
from hiker.conversation.ai.policy import AIPolicy, Due, due, gives_up, retry_seconds
from hiker.conversation.ai.turn import TurnResult
from hiker.conversation.handlers import ConversationHandlers
from hiker.conversation.responder import RuleBookResponder
from hiker.conversation.rules import AI_OVER_BUDGET_TEXT, AI_UNAVAILABLE_TEXT
from hiker.conversation.timers import Activity
from hiker.core.ai_model import ContextTooLong, ModelRejected, ModelUnavailable, Usage
from hiker.core.delays import snap_ms
from hiker.core.errors import RetryLater
from hiker.core.keys import Keys
from hiker.core.requests import Handoff, Remind
from hiker.core.settings.ai import AISettings
from hiker.testing.fakes import InMemoryClaims
from tests.unit.ai_world import PNID, AIWorld, answer

USER = "15550001111"


def test_a_turn_stands_only_for_the_latest_message_waiting() -> None:
    world = AIWorld()
    first, second = world.message(USER, "hi"), world.message(USER, "there")
    assert due(first.wamid, [first, second]) is Due.SUPERSEDED
    assert due(second.wamid, [first, second]) is Due.ANSWER
    assert due(first.wamid, []) is Due.ANSWERED


def test_retry_waits_grow_are_snapped_up_and_honour_retry_after() -> None:
    def half() -> float:  # no jitter: the step itself
        return 0.5

    assert retry_seconds(0, None, half) == snap_ms(1.0, to="up") / 1000
    assert retry_seconds(3, None, half) == snap_ms(8.0, to="up") / 1000
    assert retry_seconds(20, None, half) == snap_ms(60.0, to="up") / 1000
    # Retry-After wins over a shorter backoff, and is never undercut by the snap.
    assert retry_seconds(0, 7.0, half) >= 7.0
    assert retry_seconds(0, 7.0, half) == snap_ms(7.0, to="up") / 1000


def test_give_up_after_the_configured_seconds_since_the_first_attempt() -> None:
    assert not gives_up(1000.0, 1599.0, 600.0)
    assert gives_up(1000.0, 1600.0, 600.0)


def test_budgets_the_number_first_then_the_user() -> None:
    assert spent_out(10, 10, None, None) is None
    assert spent_out(99, 10, 100, 1000) is None
    assert spent_out(100, 10, 100, 1000) == "user"
    assert spent_out(100, 1000, 100, 1000) == "number"
    assert utc_day(0.0) == "19700101"
    assert utc_day(86399.9) == "19700101"


def test_a_turn_holds_its_claim_longer_than_every_call_it_may_make() -> None:
    settings = AISettings(
        ai_base_url="http://model/v1", ai_model="m", ai_timeout_seconds=30, ai_max_tool_rounds=4
    )
    policy = AIPolicy.of(settings)
    assert policy.turn_seconds == 30 * 6
    assert policy.lease_seconds > policy.turn_seconds
    assert policy.debounce_seconds == 1.5


async def test_a_message_waits_and_sets_its_turn_after_the_debounce() -> None:
    world = AIWorld()
    message = world.message(USER, "what time do you open?")
    await world.say(message)
    assert await world.waiting.waiting(PNID, USER) == [message]
    [(turn, delay)] = world.turns_scheduled
    assert (turn.wamid, delay) == (message.wamid, world.policy.debounce_seconds)


async def test_a_burst_is_answered_by_one_call_and_one_reply() -> None:
    world = AIWorld(answer("We open at 9."))
    messages = [world.message(USER, text) for text in ("hi", "when do you", "open?")]
    for message in messages:
        await world.say(message)
    await world.fire_all()
    [asked] = world.runner.asked
    assert [m.text for m in asked.new_messages] == ["hi", "when do you", "open?"]
    assert asked.history == []  # the new messages are not told twice
    assert world.replies(USER) == [["We open at 9."]]
    assert world.registry.get_sample_value("hiker_ai_debounced_messages_total") == 2
    assert await world.waiting.waiting(PNID, USER) == []
    # A copy of the answering turn redelivered later finds its work done.
    await world.engine.on_due(world.fired[-1])
    assert len(world.runner.asked) == 1
    assert len(world.replies(USER)) == 1


async def test_the_history_before_the_new_messages_is_sent_in_order() -> None:
    world = AIWorld(answer("first answer"), answer("second answer"))
    await world.say(world.message(USER, "one"))
    await world.fire_all()
    await world.say(world.message(USER, "two"))
    await world.fire_all()
    second = world.runner.asked[1]
    assert second.system_prompt == "be brief"
    assert [(t.direction, t.text) for t in second.history] == [
        ("in", "one"),
        ("out", "first answer"),
    ]
    assert [m.text for m in second.new_messages] == ["two"]


async def test_over_budget_sends_the_configured_reply_without_a_call() -> None:
    world = AIWorld(answer("spent", tokens=50))
    world.budget.limit = 50
    await world.say(world.message(USER, "one"))
    await world.fire_all()
    await world.say(world.message(USER, "two"))
    await world.fire_all()
    assert len(world.runner.asked) == 1
    assert world.replies(USER) == [["spent"], [AI_OVER_BUDGET_TEXT]]
    assert world.registry.get_sample_value("hiker_ai_over_budget_total", {"budget": "user"}) == 1
    assert world.handed.calls == []


async def test_over_budget_may_hand_over_instead() -> None:
    world = AIWorld(policy=AIPolicy(turn_seconds=10, over_budget="handoff"))
    world.budget.limit = 0
    await world.say(world.message(USER, "one"))
    await world.fire_all()
    assert world.runner.asked == []
    assert world.replies(USER) == []
    assert [reason for *_, reason in world.handed.calls] == ["ai over budget"]


async def test_an_unavailable_model_holds_the_turn_for_after_retry_after() -> None:
    busy = ModelUnavailable("429", outcome="rate_limited", retry_after=7.0)
    world = AIWorld(busy, answer("served"))
    message = world.message(USER, "one")
    await world.say(message)
    await world.fire_all()
    assert world.replies(USER) == []
    [(again, wait)] = world.turns_scheduled
    assert (again.wamid, again.attempt, again.first_attempt_at) == (
        message.wamid,
        1,
        world.clock(),
    )
    assert wait >= 7.0
    world.clock.advance(wait)
    await world.fire_all()  # the claim was given back: the retry takes it
    assert world.replies(USER) == [["served"]]
    assert world.turns_scheduled == []


async def test_past_give_up_the_user_is_told_and_handed_to_a_person() -> None:
    failing = [ModelUnavailable("503", outcome="server_error") for _ in range(3)]
    world = AIWorld(*failing, policy=AIPolicy(turn_seconds=10, give_up_seconds=30))
    await world.say(world.message(USER, "one"))
    await world.fire_all()
    world.clock.advance(20)
    await world.fire_all()
    assert world.replies(USER) == []
    world.clock.advance(20)  # 40 s since the first attempt
    await world.fire_all()
    assert world.replies(USER) == [[AI_UNAVAILABLE_TEXT]]
    assert [reason for *_, reason in world.handed.calls] == ["ai unavailable"]
    assert world.turns_scheduled == []
    assert await world.waiting.waiting(PNID, USER) == []


@pytest.mark.parametrize("error", [ModelRejected("401"), ContextTooLong("too long")])
async def test_a_refused_turn_is_not_retried(error: Exception) -> None:
    world = AIWorld(error)  # type: ignore[arg-type]
    await world.say(world.message(USER, "one"))
    await world.fire_all()
    assert world.replies(USER) == [[AI_UNAVAILABLE_TEXT]]
    assert len(world.handed.calls) == 1
    assert world.turns_scheduled == []


async def test_a_blank_answer_sends_nothing_and_answers_the_messages() -> None:
    world = AIWorld(answer("   "))
    await world.say(world.message(USER, "one"))
    await world.fire_all()
    assert world.replies(USER) == []
    assert await world.waiting.waiting(PNID, USER) == []


async def test_what_the_turn_asked_for_is_carried_out() -> None:
    result = TurnResult(
        text="A person will take it from here.",
        reminders=[Remind(after_seconds=3600, key="nudge")],
        handoff=Handoff(minutes=45, reason="asked for a person"),
        usage=Usage(3, 4),
    )
    world = AIWorld(result)
    await world.say(world.message(USER, "I want a human"))
    await world.fire_all()
    assert world.replies(USER) == [["A person will take it from here."]]
    assert [timer.reminder for timer in world.reminders] == ["nudge"]
    assert world.handed.calls == [(PNID, USER, 45 * 60, "asked for a person")]
    assert world.budget.used[(PNID, USER)] == 7


async def test_a_turn_due_while_a_person_owns_the_conversation_is_left_to_them() -> None:
    world = AIWorld(answer("never"))
    message = world.message(USER, "one")
    await world.say(message)
    world.conversations.latest[(PNID, USER)] = Activity(message.wamid, message.received_at)
    world.conversations.owners[(PNID, USER)] = (world.clock() + 60, "a person")
    await world.fire_all()
    assert world.runner.asked == []
    assert await world.waiting.waiting(PNID, USER) == []


async def test_a_message_sent_during_a_call_is_answered_after_it_alone() -> None:
    release = asyncio.Event()
    world = AIWorld(release, answer("about one"), answer("about two"))
    await world.say(world.message(USER, "one"))
    [(first, _)] = world.turns_scheduled
    running = asyncio.create_task(world.engine.on_due(first))
    await world.runner.entered.wait()
    await world.say(world.message(USER, "two"))
    [_, (second, _)] = world.turns_scheduled
    with pytest.raises(RetryLater):  # held (the consumer asks again) while "one" is answered
        await world.engine.on_due(second)
    release.set()
    await running
    await world.engine.on_due(second)
    assert [[m.text for m in asked.new_messages] for asked in world.runner.asked] == [
        ["one"],
        ["two"],
    ]
    assert world.replies(USER) == [["about one"], ["about two"]]


async def test_a_turn_past_its_deadline_is_held_and_asked_again() -> None:
    never = asyncio.Event()
    world = AIWorld(never, policy=AIPolicy(turn_seconds=0.05))
    await world.say(world.message(USER, "one"))
    await world.fire_all()
    [(again, _)] = world.turns_scheduled
    assert again.attempt == 1
    assert world.replies(USER) == []
    assert world.claims.get(Keys("t:").ai_turn(PNID, USER, again.wamid)) is None  # given back


async def test_only_what_no_rule_answers_goes_to_the_model() -> None:
    world = AIWorld()
    handlers = ConversationHandlers(
        rules=world.rules,
        responder=RuleBookResponder(world.rules),
        conversations=world.conversations,
        claims=InMemoryClaims(world.clock, lease_seconds=30, done_ttl_seconds=3600),
        keys=Keys("t:"),
        send=world.published.send,
        schedule=world.published.schedule,
        metrics=world.metrics,
        clock=world.clock,
        ai=world.engine,
    )
    hello, question = world.message(USER, "hello"), world.message(USER, "is it open?")
    await handlers.on_message(hello)
    await handlers.on_message(question)
    assert [m.wamid for m in await world.waiting.waiting(PNID, USER)] == [question.wamid]
    assert [turn.wamid for turn, _ in world.turns_scheduled] == [question.wamid]
    assert world.replies(USER) == [["hello to you too"]]
