"""A conversation kept under a user's phone number is adopted by their business-scoped user id.

State is written here as the release before BSUIDs wrote it, under the phone number; the user
then writes with both ids. Nobody loses a form half filled, nor gets a second follow-up.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest

from hiker.conversation.state import ConversationStore, Recorded, Turn
from hiker.core.claims import ClaimState, ClaimStore
from hiker.core.keys import Keys
from hiker.core.redis_store import RedisClient, connect_redis
from hiker.tools.simulate import messages_change, webhook_body
from tests.integration.conftest import PHONE_NUMBER_ID, PipelineFactory
from tests.integration.test_identity import from_user, say_as

pytestmark = pytest.mark.integration

PHONE = "15550009101"
BSUID = "US.13491208655302741918"
BOT = {
    "HIKER_RESPONDER": "tests.integration.bots:counting",
    "HIKER_USER_SEND_INTERVAL_SECONDS": "0",
}


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[RedisClient]:
    client = connect_redis(redis_url)
    yield client
    await client.aclose()


async def write_the_old_way(redis: RedisClient, keys: Keys, state: dict[str, object]) -> None:
    """A conversation as kept before BSUIDs: under the phone number, with a state and history."""
    conversation = keys.conversation(PHONE_NUMBER_ID, PHONE)
    now = time.time() - 60
    await redis.hset(
        conversation,
        mapping={
            "last_wamid": "wamid.OLD",
            "last_received_at": repr(now),
            "window_opened_at": int(now),
            "state": json.dumps(state),
            "state_v": 3,
        },
    )
    await redis.pexpire(conversation, 600_000)
    old_turn = Turn("in", "wamid.OLD", "text", "my name is Ana", now)
    await redis.rpush(keys.history(PHONE_NUMBER_ID, PHONE), old_turn.encoded())


async def test_state_and_history_under_the_phone_number_move_to_the_bsuid_with_the_claim(
    redis: RedisClient, redis_prefix: str
) -> None:
    keys = Keys(redis_prefix, adopt_phone_keys=True)
    store = ConversationStore(redis, keys, idle_timeout_seconds=600)
    claims = ClaimStore(redis, lease_seconds=5, done_ttl_seconds=60)
    form = {"form": {"name": "Ana", "step": "email"}}
    await write_the_old_way(redis, keys, form)
    now = time.time()
    turn = Turn("in", "wamid.NEW", "text", "ana@example.com", now)
    step = store.record_step(
        PHONE_NUMBER_ID, BSUID, "wamid.NEW", now, int(now), turn, adopt_from=PHONE
    )
    claim = await claims.claim(keys.claim(PHONE_NUMBER_ID, BSUID, "wamid.NEW"), step=step)
    assert claim.state is ClaimState.CLAIMED
    recorded = Recorded.of(claim.step_values)
    assert recorded.state == form  # the half-filled form, read in the same round trip
    assert recorded.state_version == 3
    assert await redis.exists(keys.conversation(PHONE_NUMBER_ID, PHONE)) == 0
    history = await store.history(PHONE_NUMBER_ID, BSUID, 10)
    assert [t.id for t in history] == ["wamid.OLD", "wamid.NEW"]
    # A timer set under the phone number finds the conversation where it went.
    activity = await store.last_activity(PHONE_NUMBER_ID, PHONE)
    assert activity is not None
    assert (activity.last_wamid, activity.moved_to) == ("wamid.NEW", BSUID)


async def test_adoption_never_overwrites_what_the_bsuid_already_holds(
    redis: RedisClient, redis_prefix: str
) -> None:
    keys = Keys(redis_prefix, adopt_phone_keys=True)
    store = ConversationStore(redis, keys, idle_timeout_seconds=600)
    claims = ClaimStore(redis, lease_seconds=5, done_ttl_seconds=60)
    await write_the_old_way(redis, keys, {"stale": True})
    newer = keys.conversation(PHONE_NUMBER_ID, BSUID)
    await redis.hset(newer, mapping={"state": json.dumps({"fresh": True}), "state_v": 7})
    now = time.time()
    step = store.record_step(PHONE_NUMBER_ID, BSUID, "wamid.N2", now, int(now), adopt_from=PHONE)
    claim = await claims.claim(keys.claim(PHONE_NUMBER_ID, BSUID, "wamid.N2"), step=step)
    assert Recorded.of(claim.step_values).state == {"fresh": True}


async def test_without_adoption_the_phone_keyed_conversation_is_left_alone(
    redis: RedisClient, redis_prefix: str
) -> None:
    keys = Keys(redis_prefix)  # as on a Redis Cluster: no rename across hash slots
    store = ConversationStore(redis, keys, idle_timeout_seconds=600)
    claims = ClaimStore(redis, lease_seconds=5, done_ttl_seconds=60)
    await write_the_old_way(redis, keys, {"form": {}})
    now = time.time()
    step = store.record_step(PHONE_NUMBER_ID, BSUID, "wamid.N3", now, int(now), adopt_from=PHONE)
    await claims.claim(keys.claim(PHONE_NUMBER_ID, BSUID, "wamid.N3"), step=step)
    assert await redis.exists(keys.conversation(PHONE_NUMBER_ID, PHONE)) == 1
    assert await redis.exists(keys.alias(PHONE_NUMBER_ID, PHONE)) == 0


async def test_a_form_half_filled_under_the_phone_number_survives_end_to_end(
    make_pipeline: PipelineFactory, redis: RedisClient, redis_prefix: str
) -> None:
    keys = Keys(redis_prefix)
    await write_the_old_way(redis, keys, {"n": 2})
    pipeline = await make_pipeline(HIKER_IDLE_TIMEOUT_SECONDS="600", **BOT)
    await say_as(pipeline, BSUID, "hello", phone=PHONE)
    # The count went on from the state kept under the phone number; the reply went to it.
    assert await pipeline.wait_for_texts(PHONE, 1) == ["message 3"]
    [reply] = await pipeline.sent(PHONE)
    assert reply["payload"]["to"] == PHONE


async def test_a_timer_set_under_the_phone_number_never_adds_a_second_follow_up(
    make_pipeline: PipelineFactory,
) -> None:
    pipeline = await make_pipeline(HIKER_IDLE_TIMEOUT_SECONDS="2", **BOT)
    # As before BSUIDs: the message names the user by phone number only, keyed by it, and
    # its idle timer waits in the broker under the phone number.
    await pipeline.say(PHONE, "hi")
    assert await pipeline.wait_for_texts(PHONE, 1) == ["message 1"]
    # Before that timer fires, the user writes again, now with a BSUID as well.
    await say_as(pipeline, BSUID, "again", phone=PHONE)
    texts = await pipeline.wait_for_texts(PHONE, 3, within=20)
    assert texts[:2] == ["message 1", "message 2"]  # one conversation: the count went on
    await asyncio.sleep(3.0)  # both timers are out of their queue by now
    sent = await pipeline.sent(PHONE) + await pipeline.sent(BSUID)
    followups = [m for m in sent if m["text"] not in ("message 1", "message 2")]
    assert len(followups) == 1, [m["text"] for m in sent]
    assert followups[0]["payload"]["to"] == PHONE


async def test_a_user_whose_phone_number_stops_appearing_keeps_one_conversation(
    make_pipeline: PipelineFactory,
) -> None:
    pipeline = await make_pipeline(HIKER_IDLE_TIMEOUT_SECONDS="2", **BOT)
    await say_as(pipeline, BSUID, "one", phone=PHONE)
    assert await pipeline.wait_for_texts(PHONE, 1) == ["message 1"]
    # Meta leaves the phone number out from now on (a username, no recent exchange).
    await say_as(pipeline, BSUID, "two")
    assert await pipeline.wait_for_texts(BSUID, 1) == ["message 2"]  # the same state
    texts = await pipeline.wait_for_texts(BSUID, 2, within=20)
    await asyncio.sleep(3.0)
    assert await pipeline.texts(BSUID) == texts  # one follow-up, to the BSUID
    assert len(texts) == 2
    assert await pipeline.texts(PHONE) == ["message 1"]


def test_the_webhook_helper_builds_what_meta_sends() -> None:
    body = from_user({"id": "wamid.X", "timestamp": "1", "type": "text"}, BSUID)
    value = body["entry"][0]["changes"][0]["value"]
    assert "from" not in value["messages"][0]
    assert value["contacts"][0]["user_id"] == BSUID


def changed_user_id(previous: str, new: str) -> dict[str, object]:
    """Meta's ``system`` message: the user's BSUID changed from ``previous`` to ``new``."""
    system = {
        "body": "User changed their business-scoped user id",
        "type": "user_changed_user_id",
        "user_id": new,
        "previous_user_id": previous,
    }
    message = {"id": f"wamid.SYS{new}", "timestamp": str(int(time.time())), "type": "system"}
    message["system"] = system
    return webhook_body(messages_change([message]))


NEW_BSUID = "US.99887766554433221100"


async def test_a_changed_user_id_moves_a_pending_reminder_and_is_never_answered(
    make_pipeline: PipelineFactory,
) -> None:
    pipeline = await make_pipeline(HIKER_IDLE_TIMEOUT_SECONDS="600", **BOT)
    await say_as(pipeline, BSUID, "remind 3")
    assert await pipeline.wait_for_texts(BSUID, 1) == ["message 1"]
    change = changed_user_id(BSUID, NEW_BSUID)
    assert await pipeline.post(change) == 200
    assert await pipeline.post(change) == 200  # Meta delivers at least once
    # The reminder set under the old id fires for the conversation, now under the new one:
    # it sees the history (the message and its reply, moved), and goes to the new id.
    texts = await pipeline.wait_for_texts(NEW_BSUID, 1, within=20)
    assert texts == ["reminded remind after 1 (2)"]
    await say_as(pipeline, NEW_BSUID, "hello")
    assert await pipeline.wait_for_texts(NEW_BSUID, 2) == [
        "reminded remind after 1 (2)",
        "message 2",  # the state moved too: the count goes on
    ]
    await asyncio.sleep(1.0)
    assert await pipeline.texts(BSUID) == ["message 1"]
    assert len(await pipeline.texts(NEW_BSUID)) == 2  # the system message got no answer


async def test_a_changed_user_id_never_resets_the_idle_timer_nor_doubles_the_follow_up(
    make_pipeline: PipelineFactory,
) -> None:
    pipeline = await make_pipeline(HIKER_IDLE_TIMEOUT_SECONDS="2", **BOT)
    await say_as(pipeline, BSUID, "hi")
    assert await pipeline.wait_for_texts(BSUID, 1) == ["message 1"]
    assert await pipeline.post(changed_user_id(BSUID, NEW_BSUID)) == 200
    [followup] = await pipeline.wait_for_texts(NEW_BSUID, 1, within=20)
    await asyncio.sleep(3.0)
    assert await pipeline.texts(NEW_BSUID) == [followup]
    assert await pipeline.texts(BSUID) == ["message 1"]


async def test_a_change_reported_after_the_new_id_wrote_still_makes_one_conversation(
    make_pipeline: PipelineFactory,
) -> None:
    pipeline = await make_pipeline(HIKER_IDLE_TIMEOUT_SECONDS="2", **BOT)
    await say_as(pipeline, BSUID, "hi")
    assert await pipeline.wait_for_texts(BSUID, 1) == ["message 1"]
    # Webhooks in another order: the user's first message under the new id comes before
    # Meta's notice of the change.
    await say_as(pipeline, NEW_BSUID, "hello")
    assert await pipeline.wait_for_texts(NEW_BSUID, 1) == ["message 1"]
    assert await pipeline.post(changed_user_id(BSUID, NEW_BSUID)) == 200
    [_, followup] = await pipeline.wait_for_texts(NEW_BSUID, 2, within=20)
    await asyncio.sleep(3.0)  # the timer set under the old id is out of its queue by now
    assert await pipeline.texts(BSUID) == ["message 1"]  # no follow-up there: it moved
    assert await pipeline.texts(NEW_BSUID) == ["message 1", followup]


async def test_moving_after_the_new_id_wrote_joins_the_histories(
    redis: RedisClient, redis_prefix: str
) -> None:
    keys = Keys(redis_prefix, adopt_phone_keys=True)
    store = ConversationStore(redis, keys, idle_timeout_seconds=600)
    claims = ClaimStore(redis, lease_seconds=5, done_ttl_seconds=60)
    now = time.time()
    for user, wamid, at in ((BSUID, "wamid.A", now - 10), (NEW_BSUID, "wamid.B", now)):
        turn = Turn("in", wamid, "text", wamid, at)
        step = store.record_step(PHONE_NUMBER_ID, user, wamid, at, int(at), turn)
        await claims.claim(keys.claim(PHONE_NUMBER_ID, user, wamid), step=step)
    await store.save_state(
        PHONE_NUMBER_ID, BSUID, read_at_version=0, saved_by="wamid.A", state={"form": 1}
    )
    step = store.move_step(PHONE_NUMBER_ID, (BSUID,), NEW_BSUID)
    assert step is not None
    claim = await claims.claim(keys.claim(PHONE_NUMBER_ID, NEW_BSUID, "wamid.SYS"), step=step)
    assert claim.step_result == 1
    history = await store.history(PHONE_NUMBER_ID, NEW_BSUID, 10)
    assert [t.id for t in history] == ["wamid.A", "wamid.B"]
    # The new id had no state saved: the form follows; the latest message stays the new one.
    assert await store.read_state(PHONE_NUMBER_ID, NEW_BSUID) == (1, {"form": 1})
    activity = await store.last_activity(PHONE_NUMBER_ID, BSUID)
    assert activity is not None
    assert (activity.last_wamid, activity.moved_to) == ("wamid.B", NEW_BSUID)
    assert await redis.exists(keys.conversation(PHONE_NUMBER_ID, BSUID)) == 0
