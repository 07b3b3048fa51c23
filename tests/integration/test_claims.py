"""Claim-then-confirm against the real Redis: duplicates, crashes and calls in doubt."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from hiker.core.claims import ClaimLost, ClaimState, ClaimStep, ClaimStore

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[ClaimStore]:
    client = Redis.from_url(redis_url)
    yield ClaimStore(client, lease_seconds=0.3, done_ttl_seconds=60)
    await client.aclose()


async def test_a_confirmed_key_is_a_duplicate(store: ClaimStore, redis_prefix: str) -> None:
    key = redis_prefix + "k1"
    first = await store.claim(key)
    assert first.state is ClaimState.CLAIMED
    assert (await store.claim(key)).state is ClaimState.BUSY
    await first.confirm()
    assert (await store.claim(key)).state is ClaimState.DONE


async def test_a_crashed_claim_expires_and_is_not_a_duplicate(
    store: ClaimStore, redis_prefix: str
) -> None:
    key = redis_prefix + "k2"
    crashed = await store.claim(key)
    assert crashed.state is ClaimState.CLAIMED
    await asyncio.sleep(0.4)  # the lease runs out
    retry = await store.claim(key)
    assert retry.state is ClaimState.CLAIMED
    await crashed.release()  # too late: it is no longer its key, nothing happens
    assert (await store.claim(key)).state is ClaimState.BUSY
    with pytest.raises(ClaimLost):
        await crashed.begin_call(5)


async def test_released_claim_is_claimable_at_once(store: ClaimStore, redis_prefix: str) -> None:
    key = redis_prefix + "k3"
    claim = await store.claim(key)
    await claim.release()
    assert (await store.claim(key)).state is ClaimState.CLAIMED


async def test_a_call_that_never_reported_is_in_doubt_once(
    store: ClaimStore, redis_prefix: str
) -> None:
    key = redis_prefix + "k4"
    claim = await store.claim(key)
    await claim.begin_call(0.2)
    await asyncio.sleep(0.35)  # past the lease: only the call mark keeps others away
    doubt = await store.claim(key)
    assert doubt.state is ClaimState.IN_DOUBT
    # The one who found it in doubt now holds it; nobody else settles it a second time.
    assert (await store.claim(key)).state is ClaimState.BUSY
    await doubt.release()
    assert (await store.claim(key)).state is ClaimState.CLAIMED


async def test_a_settler_that_dies_leaves_it_in_doubt_never_free(
    redis_url: str, redis_prefix: str
) -> None:
    client = Redis.from_url(redis_url)
    store = ClaimStore(client, lease_seconds=0.2, done_ttl_seconds=60)
    try:
        key = redis_prefix + "k4b"
        claim = await store.claim(key)
        await claim.begin_call(0.1)
        await asyncio.sleep(0.15)
        assert (await store.claim(key)).state is ClaimState.IN_DOUBT  # and its settler dies
        await asyncio.sleep(0.3)  # past the settler's lease: no fresh claim, in doubt again
        assert (await store.claim(key)).state is ClaimState.IN_DOUBT
    finally:
        await client.aclose()


async def test_a_call_in_progress_keeps_others_waiting(
    store: ClaimStore, redis_prefix: str
) -> None:
    key = redis_prefix + "k5"
    claim = await store.claim(key)
    await claim.begin_call(5)
    await asyncio.sleep(0.35)
    assert (await store.claim(key)).state is ClaimState.BUSY


# Counts its runs in KEYS[1] and returns ARGV[1]: a stand-in for work done with the claim.
_COUNTING_STEP = "redis.call('INCR', KEYS[1])\nreturn tonumber(ARGV[1])"


async def test_a_step_runs_with_the_claim_and_only_when_it_is_taken(
    store: ClaimStore, redis_url: str, redis_prefix: str
) -> None:
    key, runs = redis_prefix + "k6", redis_prefix + "k6:runs"
    step = ClaimStep(_COUNTING_STEP, (runs,), (7,))
    claim = await store.claim(key, step=step)
    assert (claim.state, claim.step_result, claim.in_call) == (ClaimState.CLAIMED, 7, False)
    busy = await store.claim(key, step=step)
    await claim.confirm()
    done = await store.claim(key, step=step)
    assert (busy.state, busy.step_result) == (ClaimState.BUSY, None)
    assert (done.state, done.step_result) == (ClaimState.DONE, None)
    client = Redis.from_url(redis_url)
    try:
        assert int(await client.get(runs)) == 1
    finally:
        await client.aclose()


async def test_a_claim_whose_step_says_go_now_enters_the_call_at_once(
    store: ClaimStore, redis_prefix: str
) -> None:
    key = redis_prefix + "k7"
    go_now = ClaimStep(_COUNTING_STEP, (redis_prefix + "k7:runs",), (0,))
    claim = await store.claim(key, step=go_now, call_within=0.2)
    assert (claim.state, claim.in_call) == (ClaimState.CLAIMED, True)
    await asyncio.sleep(0.35)  # past the lease and the call's deadline, never confirmed
    assert (await store.claim(key)).state is ClaimState.IN_DOUBT


async def test_a_claim_told_to_wait_enters_the_call_only_when_asked(
    store: ClaimStore, redis_prefix: str
) -> None:
    key = redis_prefix + "k8"
    wait = ClaimStep(_COUNTING_STEP, (redis_prefix + "k8:runs",), (50_000,))
    claim = await store.claim(key, step=wait, call_within=5)
    assert (claim.state, claim.step_result, claim.in_call) == (ClaimState.CLAIMED, 50_000, False)
    await asyncio.sleep(0.35)  # a crash while waiting: the lease runs out, no doubt
    retry = await store.claim(key, step=wait, call_within=5)
    assert retry.state is ClaimState.CLAIMED
    await retry.begin_call(5)
    assert retry.in_call
    assert (await store.claim(key)).state is ClaimState.BUSY


# A step that keeps Redis busy for a while, so that its caller can be cancelled mid-script.
_SLOW_STEP = ClaimStep(
    "local t = redis.call('TIME')\n"
    "local until_us = t[1] * 1000000 + t[2] + 200000\n"
    "repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] >= until_us\n"
    "return 0"
)


async def test_a_caller_cancelled_during_its_claim_gives_the_key_back(
    store: ClaimStore, redis_prefix: str
) -> None:
    # A consumer is cancelled when its channel closes; the claim it was taking still runs, and
    # marks the call begun. Kept, that mark would have the redelivery park an unsent message.
    key = redis_prefix + "k-cancelled"
    claiming = asyncio.create_task(store.claim(key, step=_SLOW_STEP, call_within=30))
    await asyncio.sleep(0.05)  # the script is running in Redis
    claiming.cancel()
    with pytest.raises(asyncio.CancelledError):
        await claiming
    await asyncio.sleep(0.4)  # the script ends and the key is given back
    redelivered = await store.claim(key, call_within=30)
    assert redelivered.state is ClaimState.CLAIMED
    assert redelivered.in_call
