"""Claim-then-confirm against the real Redis: duplicates, crashes and calls in doubt."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from hiker.core.claims import ClaimLost, ClaimState, ClaimStore

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
    assert (await store.claim(key)).state is ClaimState.IN_DOUBT
    # The one who found it in doubt now holds it; nobody else settles it a second time.
    assert (await store.claim(key)).state is ClaimState.BUSY


async def test_a_call_in_progress_keeps_others_waiting(
    store: ClaimStore, redis_prefix: str
) -> None:
    key = redis_prefix + "k5"
    claim = await store.claim(key)
    await claim.begin_call(5)
    await asyncio.sleep(0.35)
    assert (await store.claim(key)).state is ClaimState.BUSY
