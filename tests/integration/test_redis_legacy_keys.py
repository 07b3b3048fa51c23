"""An install upgraded in place keeps what Redis held under the key names from before hash tags.

The keys are written here exactly as the previous release wrote them (``claim:<wamid>``,
``conv:<phone>:<user>``, ``sent:<key>``, ``pace:<phone>``); the current code must find them:
a message already answered stays a duplicate, a claim in flight keeps others away until its
lease ends, a pending timer still sees its conversation, pacing goes on from the reserved slot,
and a send that died in its Graph call is still in doubt, never sent again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from hiker.conversation.state import LATER_ALREADY_RECORDED, ConversationStore
from hiker.core.claim_marks import call_value, lease_value
from hiker.core.claims import GO_NOW, ClaimState, ClaimStore
from hiker.core.keys import Keys
from hiker.core.redis_store import RedisClient, connect_redis
from hiker.sender.pacing import Pacer
from tests.integration.conftest import PHONE_NUMBER_ID, PipelineFactory
from tests.support import wait_for_metric

pytestmark = pytest.mark.integration

USER = "15550009001"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[RedisClient]:
    client = connect_redis(redis_url)
    yield client
    await client.aclose()


def adopting(prefix: str) -> Keys:
    return Keys(prefix, adopt_legacy=True)


async def test_a_message_answered_before_the_upgrade_stays_a_duplicate(
    make_pipeline: PipelineFactory, redis: RedisClient, redis_prefix: str
) -> None:
    answered = "wamid.LEGACYDONE"
    await redis.set(f"{redis_prefix}claim:{answered}", b"done", ex=3600)
    await redis.set(f"{redis_prefix}sent:reply:{answered}", b"wamid:wamid.OUT", ex=3600)
    pipeline = await make_pipeline(HIKER_IDLE_TIMEOUT_SECONDS="600")
    await pipeline.say(USER, "hello", wamid=answered)  # Meta redelivers an old message
    await pipeline.say(USER, "hello")  # and the user writes anew
    assert await pipeline.wait_for_texts(USER, 1) == ["hello to you too"]
    await wait_for_metric(
        lambda: pipeline.metrics("conversation"), "hiker_duplicates_dropped_total", 1
    )
    assert await pipeline.texts(USER) == ["hello to you too"]
    keys = adopting(redis_prefix)
    # Adopted: the old name is gone, the new one holds what it held.
    assert await redis.get(f"{redis_prefix}claim:{answered}") is None
    assert await redis.get(keys.claim(PHONE_NUMBER_ID, USER, answered)) == b"done"


async def test_a_claim_in_flight_at_the_upgrade_keeps_others_away_until_its_lease_ends(
    make_pipeline: PipelineFactory, redis: RedisClient, redis_prefix: str
) -> None:
    wamid = "wamid.LEGACYLEASE"
    pipeline = await make_pipeline(HIKER_IDLE_TIMEOUT_SECONDS="600")
    # A worker of the previous release took it and died: its lease runs out in a moment.
    await redis.set(f"{redis_prefix}claim:{wamid}", lease_value(), px=1500)
    started = time.monotonic()
    await pipeline.say(USER, "hello", wamid=wamid)
    assert await pipeline.wait_for_texts(USER, 1) == ["hello to you too"]
    assert time.monotonic() - started >= 1.0  # held while the old lease lived, then served
    await asyncio.sleep(1.0)
    assert await pipeline.texts(USER) == ["hello to you too"]


async def test_state_recorded_before_the_upgrade_is_read_and_adopted(
    redis: RedisClient, redis_prefix: str
) -> None:
    keys = adopting(redis_prefix)
    store = ConversationStore(redis, keys, idle_timeout_seconds=600)
    claims = ClaimStore(redis, lease_seconds=5, done_ttl_seconds=60, legacy=keys.legacy)
    legacy = f"{redis_prefix}conv:{PHONE_NUMBER_ID}:{USER}"
    now = time.time()
    await redis.hset(
        legacy,
        mapping={"last_wamid": "wamid.NEW", "last_received_at": repr(now), "window_opened_at": 1},
    )
    await redis.pexpire(legacy, 60_000)
    # A timer pending across the upgrade fires: it sees the conversation's latest message.
    activity = await store.last_activity(PHONE_NUMBER_ID, USER)
    assert activity is not None
    assert activity.last_wamid == "wamid.NEW"
    # An older message, processed late, is recorded against the adopted state: not the latest.
    step = store.record_step(PHONE_NUMBER_ID, USER, "wamid.OLD", now - 5, int(now - 5))
    claim = await claims.claim(keys.claim(PHONE_NUMBER_ID, USER, "wamid.OLD"), step=step)
    assert claim.state is ClaimState.CLAIMED
    assert claim.step_result == LATER_ALREADY_RECORDED
    assert await redis.exists(legacy) == 0
    assert await redis.hget(keys.conversation(PHONE_NUMBER_ID, USER), "last_wamid") == (
        b"wamid.NEW"
    )


async def test_pacing_goes_on_from_the_slot_reserved_before_the_upgrade(
    redis: RedisClient, redis_prefix: str
) -> None:
    keys = adopting(redis_prefix)
    claims = ClaimStore(redis, lease_seconds=5, done_ttl_seconds=60, legacy=keys.legacy)
    pacer = Pacer(keys, rate_per_second=1)  # one send a second
    seconds, micros = await redis.time()
    reserved_until = seconds * 1_000_000 + micros + 800_000  # the old senders' next free slot
    await redis.set(f"{redis_prefix}pace:{PHONE_NUMBER_ID}", reserved_until, px=5000)
    step = pacer.reserve_step(PHONE_NUMBER_ID, USER)
    claim = await claims.claim(keys.sent(PHONE_NUMBER_ID, "reply:wamid.P1"), step=step)
    assert claim.state is ClaimState.CLAIMED
    assert claim.step_result is not None
    assert 500_000 < claim.step_result <= 800_000  # it waits for that slot, not a fresh one
    assert await redis.exists(f"{redis_prefix}pace:{PHONE_NUMBER_ID}") == 0


async def test_a_send_that_died_in_its_graph_call_before_the_upgrade_is_in_doubt(
    redis: RedisClient, redis_prefix: str
) -> None:
    keys = adopting(redis_prefix)
    claims = ClaimStore(redis, lease_seconds=5, done_ttl_seconds=60, legacy=keys.legacy)
    key = "followup:wamid.D1"
    mark = call_value(-1, lease_value(), time.time())  # its deadline passed already
    await redis.set(f"{redis_prefix}sent:{key}", mark, px=60_000)
    claim = await claims.claim(keys.sent(PHONE_NUMBER_ID, key), call_within=10)
    assert claim.state is ClaimState.IN_DOUBT  # the sender parks it for a person
    assert await redis.exists(f"{redis_prefix}sent:{key}") == 0
    # Settled once: a second look meanwhile finds it taken over, not free to send.
    assert (await claims.claim(keys.sent(PHONE_NUMBER_ID, key))).state is ClaimState.BUSY


async def test_without_adoption_old_names_are_not_read(
    redis: RedisClient, redis_prefix: str
) -> None:
    keys = Keys(redis_prefix)
    claims = ClaimStore(redis, lease_seconds=5, done_ttl_seconds=60, legacy=keys.legacy)
    await redis.set(f"{redis_prefix}claim:wamid.X", b"done", ex=60)
    claim = await claims.claim(keys.claim(PHONE_NUMBER_ID, USER, "wamid.X"))
    assert claim.state is ClaimState.CLAIMED
    assert claim.step_result == GO_NOW
    assert await redis.get(f"{redis_prefix}claim:wamid.X") == b"done"
