"""Meta's Conversation Routing on fakes: another app's thread is left alone, for that user only,
until control comes back (a ``control_passed`` notice, or the user writing on ``messages``)."""

from __future__ import annotations

from typing import Literal

from hiker.conversation.routing import ROUTING_REASON
from hiker.core.actions import Text
from hiker.core.contracts import ControlChanged, MessageReceived
from hiker.core.ownership import MAX_HANDOFF_SECONDS
from tests.unit.conversation_world import PNID, World, fired

ALICE, BOB = "15550001111", "15550002222"


def notice(world: World, control: Literal["taken", "passed"], user: str = ALICE) -> ControlChanged:
    return ControlChanged(
        phone_number_id=PNID, user=user, control=control, received_at=world.clock()
    )


def standby(world: World, wamid: str, user: str = ALICE) -> MessageReceived:
    return world.message(wamid, user=user).model_copy(update={"standby": True})


def replies_to(world: World, user: str) -> list[str]:
    return [
        a.body
        for s in world.published.sends
        if s.to == user
        for a in s.actions
        if isinstance(a, Text)
    ]


async def test_a_thread_another_app_took_is_left_alone_for_that_user_only() -> None:
    world = World()
    await world.handlers.on_message(world.message("a0", user=ALICE))
    await world.handlers.on_message(world.message("b0", user=BOB))
    world.clock.advance(5)
    taken_at = world.clock()
    await world.handlers.on_control(notice(world, "taken"))
    # Each idle timer fires: only the user whose thread is still the bot's is followed up.
    await fired(world, "a0")
    await fired(world, "b0")
    # The user's messages now reach the other app; this one gets standby copies.
    await world.handlers.on_message(standby(world, "a1"))
    assert replies_to(world, ALICE) == ["hello to you too"]
    assert replies_to(world, BOB) == ["hello to you too", "are you there"]
    # Recorded all the same: the history shows what the user wrote.
    assert [t.id for t in world.conversations.histories[(PNID, ALICE)] if t.direction == "in"] == [
        "a0",
        "a1",
    ]
    [announced] = world.ownership.announced
    assert (announced.owner, announced.way, announced.reason) == (
        "human",
        "routing",
        ROUTING_REASON,
    )
    assert world.conversations.owners[(PNID, ALICE)][0] == taken_at + MAX_HANDOFF_SECONDS
    assert world.counted("hiker_handoffs_total", reason="routing") == 1
    assert world.counted("hiker_sends_skipped_total", kind="reply", reason="human_owned") == 1


async def test_control_passed_back_makes_the_bot_answer_again() -> None:
    world = World()
    await world.handlers.on_control(notice(world, "taken"))
    world.clock.advance(60)
    await world.handlers.on_control(notice(world, "passed"))
    await world.handlers.on_message(world.message("a1"))
    assert replies_to(world, ALICE) == ["hello to you too"]
    assert [c.owner for c in world.ownership.announced] == ["human", "bot"]
    assert world.ownership.announced[-1].way == "routing"


async def test_the_users_next_message_on_messages_after_a_release_is_answered() -> None:
    world = World()
    await world.handlers.on_control(notice(world, "taken"))
    world.clock.advance(120)  # the other app released the thread: Meta says nothing
    await world.handlers.on_message(world.message("a1"))
    assert replies_to(world, ALICE) == ["hello to you too"]
    [(timer, _)] = world.published.timers  # the bot's idle period starts afresh
    assert timer.wamid == "a1"
    assert (PNID, ALICE) not in world.conversations.owners
    assert [c.owner for c in world.ownership.announced] == ["human", "bot"]


async def test_a_message_sent_before_the_take_and_delivered_late_gives_nothing_back() -> None:
    world = World()
    sent_before = world.message("a0")
    world.clock.advance(5)
    await world.handlers.on_control(notice(world, "taken"))
    await world.handlers.on_message(sent_before)
    assert replies_to(world, ALICE) == []
    assert world.conversations.owners[(PNID, ALICE)][1] == ROUTING_REASON


async def test_standby_copies_are_recorded_never_answered_and_start_no_timer() -> None:
    world = World()
    await world.handlers.on_message(standby(world, "s1"))
    await world.handlers.on_message(standby(world, "s2"))
    assert world.published.sends == []
    assert world.published.timers == []
    assert [t.id for t in world.conversations.histories[(PNID, ALICE)]] == ["s1", "s2"]
    # A standby copy says another app owns the thread: noted once (a notice may be missed).
    assert world.conversations.owners[(PNID, ALICE)][1] == ROUTING_REASON
    assert [c.way for c in world.ownership.announced] == ["routing"]
    assert world.counted("hiker_inbound_messages_total", type="text") == 2


async def test_routing_never_ends_nor_replaces_a_handoff_to_an_agent() -> None:
    world = World()
    await world.ownership.hand_to_person(
        PNID, ALICE, seconds=600, reason="billing", now=world.clock()
    )
    await world.handlers.on_message(standby(world, "s1"))
    await world.handlers.on_control(notice(world, "passed"))
    await world.handlers.on_message(world.message("a1"))
    assert replies_to(world, ALICE) == []
    assert world.conversations.owners[(PNID, ALICE)][1] == "billing"


async def test_a_notice_naming_the_phone_number_follows_the_conversation_to_its_bsuid() -> None:
    world = World()
    bsuid = "US.13491208655302741918"
    moved = world.message("a0", user=bsuid).model_copy(update={"wa_id": ALICE})
    await world.handlers.on_message(moved)  # the conversation moves from ALICE to the BSUID
    world.conversations.moved[(PNID, ALICE)] = bsuid
    world.clock.advance(1)
    await world.handlers.on_control(notice(world, "taken", user=ALICE))
    assert world.conversations.owners[(PNID, bsuid)][1] == ROUTING_REASON
    assert (PNID, ALICE) not in world.conversations.owners
