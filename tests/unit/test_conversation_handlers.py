"""Conversation's decisions on fakes: every branch of an inbound message and of a fired timer."""

from __future__ import annotations

import pytest

from hiker.conversation.rules import NumberPolicy
from hiker.conversation.timers import SERVICE_WINDOW_SECONDS
from hiker.core.actions import Template, Text
from hiker.core.contracts import StatusReceived
from hiker.core.errors import PublishFailed, RetryLater
from tests.unit.conversation_world import IDLE, PNID, World, fired


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
