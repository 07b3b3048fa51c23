"""Pacing in Redis: per phone number (Meta's throughput) and per user (its pair rate limit)."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from hiker.core.claims import GO_NOW, ClaimStore
from hiker.core.keys import Keys
from hiker.sender.pacing import Pacer

pytestmark = pytest.mark.integration


async def waits(pacer: Pacer, store: ClaimStore, prefix: str, users: list[str]) -> list[float]:
    """The seconds each send to ``users`` (in order) is told to wait for its slots."""
    result = []
    for n, user in enumerate(users):
        claim = await store.claim(f"{prefix}send:{n}", step=pacer.reserve_step("100", user))
        assert claim.step_result is not None
        result.append(claim.step_result / 1_000_000)
    return result


async def test_a_user_gets_a_burst_then_one_message_per_interval(
    redis_url: str, redis_prefix: str
) -> None:
    client = Redis.from_url(redis_url)
    try:
        store = ClaimStore(client, lease_seconds=30, done_ttl_seconds=60)
        pacer = Pacer(Keys(redis_prefix), 0, user_interval_seconds=0.5, user_burst=3)
        told = await waits(pacer, store, redis_prefix, ["ana"] * 5 + ["bo"])
        assert told[:3] == [GO_NOW] * 3  # a reply of three actions goes at once
        assert 0.4 < told[3] <= 0.5  # then one per interval
        assert 0.9 < told[4] <= 1.0
        assert told[5] == GO_NOW  # another user is not held back by her
    finally:
        await client.aclose()


async def test_the_number_and_the_user_pace_together(redis_url: str, redis_prefix: str) -> None:
    client = Redis.from_url(redis_url)
    try:
        store = ClaimStore(client, lease_seconds=30, done_ttl_seconds=60)
        pacer = Pacer(Keys(redis_prefix), 10, user_interval_seconds=0.5, user_burst=1)
        told = await waits(pacer, store, redis_prefix, ["ana", "bo", "ana"])
        assert told[0] == GO_NOW
        assert 0.05 < told[1] <= 0.1  # the number's next slot (10 per second)
        assert 0.4 < told[2] <= 0.5  # ana's own interval is the longer wait
    finally:
        await client.aclose()
