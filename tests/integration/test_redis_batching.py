"""The auto-pipelining Redis client against the real Redis: batched, yet every caller apart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis import exceptions as redis_exceptions

from hiker.core.redis_pipelining import AutoPipelinedRedis
from hiker.core.redis_store import connect_redis

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[AutoPipelinedRedis]:
    redis = connect_redis(redis_url)
    assert isinstance(redis, AutoPipelinedRedis)
    yield redis
    await redis.aclose()


async def test_commands_issued_together_share_round_trips_and_keep_their_own_results(
    client: AutoPipelinedRedis, redis_prefix: str
) -> None:
    keys = [f"{redis_prefix}b{i}" for i in range(100)]
    written = await asyncio.gather(*(client.set(k, str(i)) for i, k in enumerate(keys)))
    read = await asyncio.gather(*(client.get(k) for k in keys))
    assert written == [True] * 100  # SET's own reply parsing, as without batching
    assert read == [str(i).encode() for i in range(100)]
    assert 1 <= client.pipelined_batches <= 4


async def test_one_failing_command_fails_alone(
    client: AutoPipelinedRedis, redis_prefix: str
) -> None:
    text, counter = redis_prefix + "text", redis_prefix + "counter"
    await client.set(text, "not a number")
    outcomes = await asyncio.gather(
        client.incr(counter), client.incr(text), client.incr(counter), return_exceptions=True
    )
    assert (outcomes[0], outcomes[2]) == (1, 2)
    assert isinstance(outcomes[1], redis_exceptions.ResponseError)


async def test_scripts_survive_a_script_flush_inside_a_batch(
    client: AutoPipelinedRedis, redis_prefix: str
) -> None:
    script = client.register_script("return redis.call('INCR', KEYS[1])")
    key = redis_prefix + "scripted"
    assert await script(keys=[key]) == 1
    await client.script_flush()  # as after a Redis restart: the cached script is gone
    results = await asyncio.gather(*(script(keys=[key]) for _ in range(10)))
    assert sorted(results) == list(range(2, 12))


async def test_a_cancelled_caller_does_not_take_the_others_down(
    client: AutoPipelinedRedis, redis_prefix: str
) -> None:
    keys = [f"{redis_prefix}c{i}" for i in range(5)]
    tasks = [asyncio.create_task(client.set(k, "v")) for k in keys]
    await asyncio.sleep(0)  # the first task now gathers the batch; the rest have joined it
    tasks[0].cancel()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(outcomes[0], asyncio.CancelledError)
    assert outcomes[1:] == [True] * 4
    assert await client.exists(*keys[1:]) == 4


async def test_redis_away_fails_every_caller_with_a_connection_error() -> None:
    client = connect_redis("redis://127.0.0.1:1/0")  # nothing listens there
    try:
        outcomes = await asyncio.gather(
            *(client.get(f"k{i}") for i in range(5)), return_exceptions=True
        )
    finally:
        await client.aclose()
    assert all(isinstance(o, redis_exceptions.ConnectionError) for o in outcomes)
