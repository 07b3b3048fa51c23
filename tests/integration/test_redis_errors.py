"""A Redis that answers but refuses writes is a dependency away, not a bad message.

Against a real, private redis-server: full (``maxmemory`` reached, ``noeviction``: OOM) or
demoted to a replica by a real REPLICAOF swap that keeps the data (READONLY). Whichever service
meets it, conversation or sender, holds the messages (nothing poisoned, nothing sent), says so
once in the log, in ``/readyz`` and in its metrics, and serves each held message exactly once
within seconds of Redis writing again; what was done before the outage stays done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from hiker.core import topology
from tests.integration.conftest import (
    Pipeline,
    PipelineFactory,
    PrivateRedis,
    PrivateRedisFactory,
    metric_value,
    queue_depth,
    start_service,
)
from tests.support import wait_until

pytestmark = pytest.mark.integration

REPLY = "hello to you too"
HELD_USERS = [f"1555700{n:04d}" for n in range(8)]


async def readiness(pipeline: Pipeline, service: str) -> tuple[int, dict[str, Any]]:
    async with pipeline.session.get(pipeline.url(service, "/readyz")) as response:
        return response.status, await response.json()


async def replication_up(server: PrivateRedis) -> bool:
    info = await server.command("INFO", "replication")
    return bool(info.get("master_link_status") == "up")


RefuseWrites = Callable[[PrivateRedis], Any]


@asynccontextmanager
async def full(server: PrivateRedis) -> AsyncIterator[str]:
    """``maxmemory`` reached with ``noeviction``: every write answers OOM."""
    await server.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
    await server.command("CONFIG", "SET", "maxmemory", "1")
    try:
        yield "OOM"
    finally:
        await server.command("CONFIG", "SET", "maxmemory", "0")


def demoted(spare: PrivateRedisFactory) -> Callable[[PrivateRedis], Any]:
    @asynccontextmanager
    async def swap(server: PrivateRedis) -> AsyncIterator[str]:
        """A failover as Sentinel would do it, with the services left on the old primary:
        a replica takes the data, is promoted, and the old primary becomes its replica."""
        other = await spare()
        await other.command("REPLICAOF", "127.0.0.1", server.port)
        await wait_until(lambda: replication_up(other), 10, "the replica to sync")
        await other.command("REPLICAOF", "NO", "ONE")
        await server.command("REPLICAOF", "127.0.0.1", other.port)
        await wait_until(lambda: replication_up(server), 10, "the old primary to follow")
        try:
            yield "READONLY"
        finally:
            # Promoted again, holding everything written before the swap.
            await server.command("REPLICAOF", "NO", "ONE")

    return swap


@pytest.mark.parametrize("where", ["conversation", "sender"])
@pytest.mark.parametrize("kind", ["full", "demoted"])
async def test_a_redis_refusing_writes_holds_messages_and_serves_them_once_after(
    make_pipeline: PipelineFactory,
    private_redis_factory: PrivateRedisFactory,
    amqp_url: str,
    caplog: pytest.LogCaptureFixture,
    where: str,
    kind: str,
) -> None:
    caplog.set_level(logging.INFO)
    redis = await private_redis_factory()
    refuse = full if kind == "full" else demoted(private_redis_factory)
    if where == "conversation":
        pipeline = await make_pipeline(HIKER_REDIS_URL=redis.url, HIKER_IDLE_TIMEOUT_SECONDS="120")
    else:  # conversation on the shared Redis, the sender alone on the one that will refuse
        pipeline = await make_pipeline(
            services=("graph", "ingress", "conversation"), HIKER_IDLE_TIMEOUT_SECONDS="120"
        )
        pipeline.env["HIKER_REDIS_URL"] = redis.url
        await start_service(pipeline, "sender")
    before = await pipeline.say("15557009999", "hello")
    assert await pipeline.wait_for_texts("15557009999", 1) == [REPLY]

    async with refuse(redis) as error_class:
        for user in HELD_USERS:
            await pipeline.say(user, "hello")
        await pipeline.say("15557009999", "hello", wamid=before)  # Meta redelivering

        async def reports_it() -> bool:
            status, body = await readiness(pipeline, where)
            down = metric_value(
                await pipeline.metrics(where),
                "hiker_dependency_down",
                dependency="redis",
                error_class=error_class,
            )
            return status == 503 and body["checks"]["dependencies"] is False and down == 1

        await wait_until(reports_it, 10, f"{where} to report Redis {error_class}")
        await asyncio.sleep(1.0)  # held, not spinning through to poison
        assert await queue_depth(amqp_url, topology.POISON_QUEUE) == 0
        for user in HELD_USERS:
            assert await pipeline.texts(user) == []
        held = metric_value(await pipeline.metrics(where), "hiker_messages_held")
        assert held > 0

    for user in HELD_USERS:
        assert await pipeline.wait_for_texts(user, 1, within=15) == [REPLY]
    await asyncio.sleep(0.5)
    for user in [*HELD_USERS, "15557009999"]:
        assert await pipeline.texts(user) == [REPLY], user  # once each; the duplicate dropped

    async def ready_again() -> bool:
        return (await readiness(pipeline, where))[0] == 200

    await wait_until(ready_again, 10, f"{where} ready again")
    metrics = await pipeline.metrics(where)
    assert metric_value(metrics, "hiker_dependency_up", dependency="redis") == 1
    assert metric_value(metrics, "hiker_messages_held") == 0
    assert await queue_depth(amqp_url, topology.POISON_QUEUE) == 0
    outage_lines = [r for r in caplog.records if r.getMessage().startswith("redis unavailable")]
    assert len(outage_lines) == 1, [r.getMessage() for r in outage_lines]
    assert not [r for r in caplog.records if r.exc_info], "no traceback for a dependency"
