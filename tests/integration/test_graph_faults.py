"""Graph in trouble (5xx, 429, timeouts, refused connections), pacing under retries, and a
backend's burst across a sender restart: every send goes once, paced, or is parked."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from hiker.core import topology
from hiker.core.settings import GraphMockSettings, load_settings
from hiker.graphmock.app import create_app as create_graph_mock
from tests.integration.api.conftest import API_TOKEN, start_api
from tests.integration.conftest import (
    PHONE_NUMBER_ID,
    PipelineFactory,
    free_port,
    metric_value,
    queue_depth,
    start_service,
)
from tests.integration.faults import (
    REPLY,
    SCALE,
    assert_paced,
    retried_unreachable,
    send_times,
    texts_by_user,
    users_for,
)
from tests.support import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_graph_trouble_ends_sent_once_or_parked(
    make_pipeline: PipelineFactory, amqp_url: str
) -> None:
    pipeline = await make_pipeline(
        HIKER_IDLE_TIMEOUT_SECONDS="120", HIKER_GRAPH_TIMEOUT_SECONDS="0.5"
    )
    burst, throttled, slow, permanent = users_for(5, 4)
    await pipeline.script_faults(burst, *[{"status": 503, "code": 2}] * 3)
    await pipeline.script_faults(throttled, {"status": 429, "code": 130429, "retry_after": 2})
    await pipeline.script_faults(slow, {"status": 200, "delay": 1.0})  # answered after the timeout
    await pipeline.script_faults(permanent, {"status": 400, "code": 131026})
    posted_at = time.time()
    for user in (burst, throttled, slow, permanent):
        await pipeline.say(user, "hello")
    for user in (burst, throttled, slow):
        assert await pipeline.wait_for_texts(user, 1, within=30) == [REPLY]
    throttled_at = (await pipeline.sent(throttled))[0]["accepted_at"]
    assert throttled_at - posted_at >= 1.9  # Retry-After: 2 was honoured
    await asyncio.sleep(1.0)
    for user in (burst, throttled, slow):
        assert await pipeline.texts(user) == [REPLY]
    assert await pipeline.texts(permanent) == []
    sender = await pipeline.metrics("sender")
    assert metric_value(sender, "hiker_send_retries_total", code="2") == 3
    assert metric_value(sender, "hiker_send_retries_total", code="130429") == 1
    assert metric_value(sender, "hiker_graph_requests_total", status="timeout", code="none") >= 1
    assert metric_value(sender, "hiker_messages_parked_total", code="131026") == 1


async def test_graph_unreachable_then_back_sends_once(make_pipeline: PipelineFactory) -> None:
    port = free_port()
    pipeline = await make_pipeline(
        services=("ingress", "conversation", "sender"),
        HIKER_GRAPH_BASE_URL=f"http://127.0.0.1:{port}",
        HIKER_IDLE_TIMEOUT_SECONDS="120",
    )
    graph = TestServer(create_graph_mock(load_settings(GraphMockSettings, pipeline.env)), port=port)
    user = "15550600001"
    await pipeline.say(user, "hello")
    await wait_until(
        lambda: retried_unreachable(pipeline), 30, "a send refused and waiting for its retry"
    )
    await graph.start_server()
    pipeline.servers["graph"] = graph
    assert await pipeline.wait_for_texts(user, 1, within=30) == [REPLY]
    await asyncio.sleep(1.0)
    assert await pipeline.texts(user) == [REPLY]
    sender = await pipeline.metrics("sender")
    assert metric_value(sender, "hiker_send_retries_total", code="none") >= 1


async def test_pacing_holds_during_retries(make_pipeline: PipelineFactory) -> None:
    pipeline = await make_pipeline(
        HIKER_IDLE_TIMEOUT_SECONDS="120", HIKER_SEND_RATE_PER_SECOND="10"
    )
    users = users_for(7, 12)
    for user in users[:4]:
        await pipeline.script_faults(user, {"status": 500})
    # 10 per second, the failed attempts having used slots too.
    assert_paced(await send_times(pipeline, users), 10)


async def test_a_backends_burst_to_users_survives_a_sender_restart_paced_and_once(
    make_pipeline: PipelineFactory, tmp_path: Path, amqp_url: str
) -> None:
    """``POST /v1/messages`` far faster than the pair rate lets them go: sends past the burst
    wait for their slots in the delay queues, across a sender restart, and each goes once."""
    burst, interval = 5, 0.5
    pipeline = await make_pipeline(
        services=("graph", "sender"),
        HIKER_GRAPH_TIMEOUT_SECONDS="1",
        HIKER_USER_SEND_INTERVAL_SECONDS=str(interval),
        HIKER_USER_SEND_BURST=str(burst),
    )
    api = await start_api(pipeline, f"sqlite+aiosqlite:///{tmp_path / 'records.db'}")
    users = users_for(9, 2)
    per_user = 6 + 10 * SCALE

    async def send(user: str, n: int) -> None:
        headers = {"Authorization": f"Bearer {API_TOKEN}", "Idempotency-Key": f"{user}-{n}"}
        body = {"phone_number_id": PHONE_NUMBER_ID, "to": user, "text": f"news {n}"}
        async with pipeline.session.post(
            api.url("/v1/messages"), json=body, headers=headers
        ) as response:
            assert response.status == 202

    await asyncio.gather(*(send(user, n) for n in range(per_user) for user in users))
    await asyncio.sleep(burst * interval)  # some sent, some deferred, some waiting in hand
    await pipeline.stop("sender")
    await asyncio.sleep(1.0)
    await start_service(pipeline, "sender")

    async def all_sent() -> bool:
        return len(await pipeline.sent()) >= len(users) * per_user

    await wait_until(all_sent, 30 + per_user * interval * 2, "every send of the burst")
    await asyncio.sleep(1.0)
    by_user = await texts_by_user(pipeline)
    for user in users:
        assert by_user[user] == Counter(f"news {n}" for n in range(per_user)), user
        times = sorted(m["accepted_at"] for m in await pipeline.sent(user))
        # Never before its slot: the i-th send waits for (i - burst + 1) intervals at least
        # (less what the Graph call adds to the first one's moment).
        for i, moment in enumerate(times[burst:], start=burst):
            assert moment - times[0] >= (i - burst + 1) * interval - 0.2, (i, times)
    assert await queue_depth(amqp_url, topology.SENDER_PARKED_QUEUE) == 0
    assert await queue_depth(amqp_url, topology.POISON_QUEUE) == 0
