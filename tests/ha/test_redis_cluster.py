"""A 3-node Redis Cluster of the test's own: the client batches by node and keeps callers apart,
and the whole pipeline runs on it (every script's keys in one slot, or the cluster refuses)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis import exceptions as redis_exceptions

from hiker.core.redis_pipelining import AutoPipelinedRedisCluster
from hiker.core.redis_store import RedisTarget, connect_redis
from hiker.tools.doctor.redis import check_redis
from hiker.tools.doctor.report import Status
from tests.ha.redis_engines import RedisClusterEngine
from tests.integration.conftest import PHONE_NUMBER_ID, PipelineFactory

pytestmark = [pytest.mark.ha, pytest.mark.timeout(600)]

REPLY = "hello to you too"
FOLLOWUP = "are you there"


@pytest.fixture
async def client(redis_cluster: RedisClusterEngine) -> AsyncIterator[AutoPipelinedRedisCluster]:
    redis = connect_redis(RedisTarget(redis_cluster.url, cluster=True))
    assert isinstance(redis, AutoPipelinedRedisCluster)
    yield redis
    await redis.aclose()


async def test_commands_of_one_turn_go_as_one_batch_split_by_node(
    client: AutoPipelinedRedisCluster, redis_cluster: RedisClusterEngine
) -> None:
    keys = [f"ha:batch:{n}" for n in range(60)]
    assert len({redis_cluster.node_of(key) for key in keys}) == 3  # every node has some
    written = await asyncio.gather(*(client.set(key, str(n)) for n, key in enumerate(keys)))
    read = await asyncio.gather(*(client.get(key) for key in keys))
    assert written == [True] * 60
    assert read == [str(n).encode() for n in range(60)]
    assert 1 <= client.pipelined_batches <= 4


async def test_a_failing_command_in_a_batch_fails_only_its_caller(
    client: AutoPipelinedRedisCluster,
) -> None:
    await client.set("ha:text", "not a number")
    spanning = client.register_script("return redis.call('GET', KEYS[1])")
    outcomes = await asyncio.gather(
        client.incr("ha:counter"),
        client.incr("ha:text"),
        spanning(keys=["ha:one", "ha:two"]),  # two slots: the client refuses it, alone
        client.incr("ha:counter"),
        return_exceptions=True,
    )
    assert (outcomes[0], outcomes[3]) == (1, 2)
    assert isinstance(outcomes[1], redis_exceptions.ResponseError)
    assert isinstance(outcomes[2], redis_exceptions.RedisClusterException)


async def test_scripts_are_loaded_again_on_every_primary_after_a_flush(
    client: AutoPipelinedRedisCluster, redis_cluster: RedisClusterEngine
) -> None:
    script = client.register_script("return redis.call('INCR', KEYS[1])")
    keys = [f"ha:script:{n}" for n in range(30)]
    assert await asyncio.gather(*(script(keys=[key]) for key in keys)) == [1] * 30
    await client.script_flush()  # as after a failover to a replica that never loaded them
    assert await asyncio.gather(*(script(keys=[key]) for key in keys)) == [2] * 30


async def test_the_pipeline_served_through_a_redis_cluster(
    make_pipeline: PipelineFactory, redis_cluster: RedisClusterEngine
) -> None:
    pipeline = await make_pipeline(
        HIKER_REDIS_URL=redis_cluster.url,
        HIKER_REDIS_CLUSTER="true",
        HIKER_SEND_RATE_PER_SECOND="80",  # the sender's claim reserves pacing: one more key
        HIKER_IDLE_TIMEOUT_SECONDS="3",
    )
    prefix = pipeline.env["HIKER_REDIS_PREFIX"]
    users = [f"1555800{n:04d}" for n in range(12)]
    wamids = dict(zip(users, await asyncio.gather(*(pipeline.say(u, "hello") for u in users)),
                      strict=True))  # fmt: skip
    for user in users:
        assert await pipeline.wait_for_texts(user, 1) == [REPLY]
    await pipeline.say(users[0], "hello", wamid=wamids[users[0]])  # Meta sends it again
    for user in users:
        assert await pipeline.wait_for_texts(user, 2, within=30) == [REPLY, FOLLOWUP]
    await asyncio.sleep(1.5)
    for user in users:
        assert await pipeline.texts(user) == [REPLY, FOLLOWUP]  # the duplicate got nothing

    by_node = {
        port: [key for key in keys if key.startswith(prefix)]
        for port, keys in redis_cluster.keys().items()
    }
    assert sum(1 for keys in by_node.values() if keys) >= 2  # conversations spread out
    for user in users:
        tag = f"{{{PHONE_NUMBER_ID}:{user}}}"
        holders = {port for port, keys in by_node.items() if any(tag in key for key in keys)}
        assert len(holders) == 1, f"{user}'s keys span nodes: {holders}"


async def test_doctor_writes_through_the_cluster(redis_cluster: RedisClusterEngine) -> None:
    finding = await check_redis(RedisTarget(redis_cluster.url, cluster=True), "hiker-ha:", 3)
    assert finding.status is Status.OK, finding
    assert "3 primaries serve every slot" in finding.detail
