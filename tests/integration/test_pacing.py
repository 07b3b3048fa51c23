"""Pacing in Redis: per phone number (Meta's throughput) and per user (its pair rate limit),
and a backend's burst to one user through ``hiker api``, the sender and the Graph mock."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from hiker.core import topology
from hiker.core.claims import GO_NOW, ClaimLost, ClaimStore
from hiker.core.keys import Keys
from hiker.sender.pacing import Pacer
from tests.integration.api.conftest import API_TOKEN, start_api
from tests.integration.conftest import PHONE_NUMBER_ID, PipelineFactory
from tests.support import metric_value, queue_depth

pytestmark = pytest.mark.integration


def users_of(count: int) -> list[str]:
    return [f"1555000{7100 + n}" for n in range(count)]


async def waits(pacer: Pacer, store: ClaimStore, prefix: str, users: list[str]) -> list[float]:
    """The seconds each send to ``users`` (in order) is told to wait for its slots."""
    result = []
    for n, user in enumerate(users):
        taken = await pacer.claim(store, f"{prefix}send:{n}", "100", user)
        result.append(taken.wait_us / 1_000_000)
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


async def test_a_deferred_send_keeps_its_slot_unless_it_comes_back_very_late(
    redis_url: str, redis_prefix: str
) -> None:
    client = Redis.from_url(redis_url)
    try:
        store = ClaimStore(client, lease_seconds=30, done_ttl_seconds=60)
        keys = Keys(redis_prefix)
        pacer = Pacer(keys, 0, user_interval_seconds=10, user_burst=1)
        await pacer.claim(store, f"{redis_prefix}send:0", "100", "ana")
        second = await pacer.claim(store, f"{redis_prefix}send:1", "100", "ana")
        slot = second.slot_us
        assert slot is not None
        assert 9.9 < second.wait_us / 1_000_000 <= 10
        schedule = await client.get(keys.pace_user("100", "ana"))
        # Back from its delay queue: the same slot, nothing reserved again.
        again = await pacer.claim(store, f"{redis_prefix}send:1b", "100", "ana", reserved_us=slot)
        assert again.slot_us == slot
        assert 0 < again.wait_us <= second.wait_us
        assert await client.get(keys.pace_user("100", "ana")) == schedule
        # Past its slot: at once, and marked as inside its call already.
        past = await pacer.claim(
            store, f"{redis_prefix}send:1c", "100", "ana", reserved_us=slot - 10_500_000,
            call_within=5,
        )  # fmt: skip
        assert (past.wait_us, past.slot_us, past.claim.in_call) == (GO_NOW, None, True)
        # Over a minute late (a replayed poisoned send): paced afresh, behind the schedule.
        afresh = await pacer.claim(
            store, f"{redis_prefix}send:1d", "100", "ana", reserved_us=slot - 120_000_000
        )
        assert afresh.wait_us / 1_000_000 > 19.9
    finally:
        await client.aclose()


# Meta's pair rate limit is a burst of 10 then one message every 6 s, and the sender's claim
# lease is the Graph timeout plus 5 s (15 s, 2.5 intervals): the 13th to 16th of a burst waited
# 18 to 36 s in hand, and each redelivery reserved a slot further out. Here the same ratio,
# faster: a lease of 6 s (a Graph timeout of 1 s) and one message every 2.4 s to one user.
# A number's own rate, under ~17 per second, did the same to a backlog: here one per second.
BURSTS = {
    "to one user": (
        {"HIKER_USER_SEND_INTERVAL_SECONDS": "2.4", "HIKER_USER_SEND_BURST": "10"},
        ["15550007001"] * 16,
        10,
        2.4,
    ),
    "to many users of a slow number": (
        {"HIKER_SEND_RATE_PER_SECOND": "1", "HIKER_USER_SEND_INTERVAL_SECONDS": "0"},
        users_of(16),
        1,
        1.0,
    ),
}
# What the Graph call itself adds to a send's moment (its slot is when the call begins).
CALL_JITTER_SECONDS = 0.2


@pytest.mark.parametrize("case", list(BURSTS))
async def test_a_backends_burst_all_arrives_paced_none_poisoned(
    case: str,
    make_pipeline: PipelineFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    env, users, burst, interval = BURSTS[case]
    pipeline = await make_pipeline(
        services=("graph", "sender"), HIKER_GRAPH_TIMEOUT_SECONDS="1", **env
    )
    api = await start_api(pipeline, f"sqlite+aiosqlite:///{tmp_path / 'records.db'}")

    async def send(n: int, user: str) -> int:
        headers = {"Authorization": f"Bearer {API_TOKEN}", "Idempotency-Key": f"burst-{n}"}
        body = {"phone_number_id": PHONE_NUMBER_ID, "to": user, "text": f"news {n}"}
        async with pipeline.session.post(
            api.url("/v1/messages"), json=body, headers=headers
        ) as response:
            return response.status

    caplog.set_level(logging.WARNING)
    began = time.monotonic()
    statuses = await asyncio.gather(*(send(n, user) for n, user in enumerate(users)))
    assert statuses == [202] * len(users)
    assert time.monotonic() - began < 1.0, "the burst took more than a second"

    async def all_sent() -> list[dict[str, Any]] | None:
        sent = await pipeline.sent()
        return sent if len(sent) >= len(users) else None

    sent = await eventually(all_sent, within=60, what="every send of the burst")
    assert sorted(m["text"] for m in sent) == sorted(f"news {n}" for n in range(len(users)))
    moments = sorted(m["accepted_at"] for m in sent)
    assert moments[burst] - moments[0] >= interval - CALL_JITTER_SECONDS, "over the burst"
    for before, after in zip(moments[burst - 1 :], moments[burst:], strict=False):
        assert after - before >= interval - CALL_JITTER_SECONDS, moments

    amqp_url = pipeline.env["HIKER_AMQP_URL"]
    assert await queue_depth(amqp_url, topology.SENDER_PARKED_QUEUE) == 0
    assert await queue_depth(amqp_url, topology.POISON_QUEUE) == 0
    metrics = await pipeline.metrics("sender")
    assert metric_value(metrics, "hiker_sends_deferred_total") >= 1
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert not [r for r in caplog.records if r.exc_info and r.exc_info[0] is ClaimLost]
    await asyncio.sleep(interval)  # nothing more comes: each was sent once
    assert len(await pipeline.sent()) == len(users)


async def eventually(check: Callable[[], Awaitable[Any]], *, within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
