"""The in-memory conversation store the harness and the handler tests run on
(``hiker.testing.fakes.InMemoryConversations``) against the real ``ConversationStore`` in
Redis: the same scenarios, the same answers, so that a bot that passes in ``BotHarness``
keeps, loses and orders its state and history as it will in the pipeline."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from hiker.conversation.state import ConversationStore, Recorded, Turn
from hiker.core.claims import ClaimStore
from hiker.core.keys import Keys
from hiker.core.ownership import OwnershipStore
from hiker.core.redis_store import connect_redis
from hiker.testing.fakes import Clock, InMemoryClaims, InMemoryConversations
from tests.fakes import InMemoryOwnership

pytestmark = pytest.mark.integration

PNID, USER = "100000000000001", "15550600001"
HISTORY = 4


@dataclass
class Subject:
    conversations: ConversationStore | InMemoryConversations
    claims: ClaimStore | InMemoryClaims
    prefix: str
    ownership: OwnershipStore | InMemoryOwnership

    async def record(self, wamid: str, at: float, turn: Turn | None = None) -> Recorded:
        """Record ``wamid`` as conversation does: in the step of the message's claim."""
        step = self.conversations.record_step(PNID, USER, wamid, at, int(at), turn)
        claim = await self.claims.claim(f"{self.prefix}claim:{wamid}:{at}", step=step)
        return Recorded.of(claim.step_values)


@pytest.fixture(params=["redis", "fake"])
async def subject(
    request: pytest.FixtureRequest, redis_url: str, redis_prefix: str
) -> AsyncIterator[Subject]:
    if request.param == "redis":
        redis = connect_redis(redis_url)
        store = ConversationStore(
            redis, Keys(redis_prefix), idle_timeout_seconds=600, history_length=HISTORY
        )
        claims = ClaimStore(redis, lease_seconds=30, done_ttl_seconds=60)
        yield Subject(store, claims, redis_prefix, OwnershipStore(redis, Keys(redis_prefix)))
        await redis.aclose()
        return
    fake = InMemoryConversations(history_length=HISTORY)
    claims = InMemoryClaims(Clock(), lease_seconds=30, done_ttl_seconds=60)
    yield Subject(fake, claims, "fake:", InMemoryOwnership(fake))


async def test_the_state_is_saved_by_compare_and_set(subject: Subject) -> None:
    store = subject.conversations
    first = await subject.record("w1", 1.0)
    assert (first.latest, first.state_version, first.state) == (True, 0, {})
    assert await store.save_state(PNID, USER, read_at_version=0, saved_by="w1", state={"n": 1})
    # Another replica read version 0 too and answered another message: it must retry.
    assert not await store.save_state(PNID, USER, read_at_version=0, saved_by="w2", state={})
    assert await store.read_state(PNID, USER) == (1, {"n": 1})
    # A retry of the save that went through is a success, not applied twice.
    assert await store.save_state(PNID, USER, read_at_version=0, saved_by="w1", state={"n": 1})
    assert await store.read_state(PNID, USER) == (1, {"n": 1})


async def test_a_message_retried_after_its_save_reads_the_state_it_first_saw(
    subject: Subject,
) -> None:
    store = subject.conversations
    await subject.record("w1", 1.0)
    await store.save_state(PNID, USER, read_at_version=0, saved_by="w1", state={"n": 1})
    retried = await subject.record("w1", 1.5)  # a redelivery, claimed again after a crash
    assert (retried.state_version, retried.state, retried.saved_already) == (1, {}, True)
    later = await subject.record("w2", 2.0)
    assert (later.state_version, later.state, later.saved_already) == (1, {"n": 1}, False)


async def test_a_message_older_than_the_latest_moves_nothing(subject: Subject) -> None:
    store = subject.conversations
    assert (await subject.record("w2", 2.0)).latest
    assert not (await subject.record("w1", 1.0)).latest
    activity = await store.last_activity(PNID, USER)
    assert activity is not None
    assert (activity.last_wamid, activity.last_received_at) == ("w2", 2.0)


async def test_history_keeps_the_last_turns_in_order_each_once(subject: Subject) -> None:
    store = subject.conversations
    turns = [Turn("in", f"w{n}", "text", f"m{n}", float(n)) for n in range(1, 6)]
    await subject.record("w1", 1.0, turns[0])
    await subject.record("w1", 1.5, turns[0])  # a retry adds nothing twice
    await store.append_turns(PNID, USER, [turns[1], turns[1]])
    step = store.append_step(PNID, USER, turns[2:4])
    assert step is not None
    claim = await subject.claims.claim(f"{subject.prefix}append")
    await claim.confirm(step=step)
    assert await store.history(PNID, USER, 10) == turns[:4]
    await store.append_turns(PNID, USER, turns[4:])
    assert await store.history(PNID, USER, 10) == turns[1:]  # the oldest fell off
    assert await store.history(PNID, USER, 2) == turns[3:]
    assert await store.history(PNID, USER, 0) == []


async def test_a_handoff_is_read_with_each_message_and_with_the_last_activity(
    subject: Subject,
) -> None:
    store, ownership = subject.conversations, subject.ownership
    await subject.record("w1", 1.0)
    await ownership.hand_to_person(PNID, USER, seconds=600, reason="conversation routing", now=2.0)
    held = await subject.record("w2", 3.0)
    assert (held.owner.until, held.owner.reason) == (602.0, "conversation routing")
    activity = await store.last_activity(PNID, USER)
    assert activity is not None
    assert (activity.owner_until, activity.handed_at) == (602.0, 2.0)
    # Routing gives back only what routing took; then the next message finds the bot owning it.
    assert not await ownership.give_back(PNID, USER, now=4.0, only_reason="refund")
    assert await ownership.give_back(PNID, USER, now=4.0, only_reason="conversation routing")
    back = await subject.record("w3", 5.0)
    assert (back.owner.until, back.owner.reason) == (None, None)
    activity = await store.last_activity(PNID, USER)
    assert activity is not None
    assert (activity.owner_until, activity.handed_at) == (None, 2.0)
