"""A primary, a replica and three sentinels of the test's own, passwords on both: a failover
while users write. The services find the new primary through the sentinels, hold what the
demoted one refused (READONLY) and serve every message once; nothing is poisoned."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from hiker.core import topology
from hiker.core.addresses import parse_nodes
from hiker.core.redis_store import RedisTarget
from hiker.tools.doctor.redis import check_redis
from hiker.tools.doctor.report import Status
from hiker.tools.simulate import encode, messages_change, text_message, webhook_body
from tests.ha.conftest import post_until_accepted, ready, wait_until
from tests.ha.redis_engines import SENTINEL_MASTER, SentinelEngine
from tests.integration.conftest import PipelineFactory
from tests.support import queue_depth

pytestmark = [pytest.mark.ha, pytest.mark.timeout(600)]

REPLY = "hello to you too"


async def test_doctor_finds_the_primary_through_the_sentinels(
    redis_sentinel: SentinelEngine,
) -> None:
    engine = redis_sentinel
    target = RedisTarget(
        "redis://ignored.invalid:1/0",
        password=engine.data_password,
        sentinels=parse_nodes(engine.sentinels),
        sentinel_master=SENTINEL_MASTER,
        sentinel_password=engine.sentinel_password,
    )
    finding = await check_redis(target, "hiker-ha:", 3)
    assert finding.status is Status.OK, finding
    assert f"the primary now is 127.0.0.1:{engine.master_port()}" in finding.detail
    wrong = await check_redis(replace(target, sentinel_master="nobody"), "hiker-ha:", 3)
    assert wrong.status is Status.FAIL
    assert "HIKER_REDIS_SENTINEL_MASTER" in wrong.fix
    assert engine.data_password not in f"{wrong.detail} {wrong.fix}"


async def test_a_sentinel_failover_while_users_write_serves_every_message_once(
    make_pipeline: PipelineFactory, redis_sentinel: SentinelEngine, amqp_url: str
) -> None:
    engine = redis_sentinel
    assert engine.master_port() == engine.primary_port
    pipeline = await make_pipeline(
        # The URL's host is not used under Sentinel; its database number is.
        HIKER_REDIS_URL="redis://ignored.invalid:1/0",
        HIKER_REDIS_SENTINELS=engine.sentinels,
        HIKER_REDIS_SENTINEL_MASTER=SENTINEL_MASTER,
        HIKER_REDIS_PASSWORD=engine.data_password,
        HIKER_REDIS_SENTINEL_PASSWORD=engine.sentinel_password,
        HIKER_SEND_RATE_PER_SECOND="80",
        HIKER_IDLE_TIMEOUT_SECONDS="600",
        # A lease taken on the old primary and replicated keeps its message waiting that long.
        HIKER_CLAIM_LEASE_SECONDS="5",
    )
    users = [f"1555810{n:04d}" for n in range(60)]
    later = [f"1555811{n:04d}" for n in range(10)]

    async def traffic(who: list[str]) -> None:
        for user in who:
            body = encode(webhook_body(messages_change([text_message(user, "hello")])))
            await post_until_accepted(pipeline, body)
            await asyncio.sleep(0.1)

    writing = asyncio.create_task(traffic(users))
    try:

        async def some_served() -> bool:
            return sum([len(await pipeline.texts(u)) for u in users[:15]]) >= 15

        await wait_until(some_served, 60, "the first users' replies")
        await asyncio.to_thread(engine.sentinel, "SENTINEL", "FAILOVER", SENTINEL_MASTER)

        async def promoted() -> bool:
            return await asyncio.to_thread(engine.master_port) == engine.replica_port

        await wait_until(promoted, 60, "the sentinels to promote the replica")
        await writing
    finally:
        writing.cancel()

    async def demoted() -> bool:
        return "role:slave" in await asyncio.to_thread(engine.info, engine.primary_port)

    # Sentinel turns the old primary into a replica a while after the promotion; from then on
    # it answers writes with READONLY, and whoever still talks to it must move on.
    await wait_until(demoted, 60, "the old primary to become a replica")
    await traffic(later)

    async def all_served() -> bool:
        return all([await pipeline.texts(u) for u in users + later])

    await wait_until(all_served, 90, "a reply to every user")
    await asyncio.sleep(2.0)  # time for a doubled reply to show
    doubled = {u: texts for u in users + later if (texts := await pipeline.texts(u)) != [REPLY]}
    assert not doubled
    assert await queue_depth(amqp_url, topology.POISON_QUEUE) == 0
    for service in ("conversation", "sender"):
        assert await ready(pipeline, service), f"{service} is not ready after the failover"
