"""Faults while messages flow: broker restarts, Redis stalls, SIGKILLed services, Graph trouble,
two replicas of everything. Counted at the Graph mock: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aio_pika
import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from hiker.core import topology
from hiker.core.settings import GraphMockSettings, load_settings
from hiker.graphmock.app import create_app as create_graph_mock
from hiker.tools.simulate import encode, messages_change, post_signed, text_message, webhook_body
from tests.integration.api.conftest import API_TOKEN, start_api
from tests.integration.conftest import (
    APP_SECRET,
    PHONE_NUMBER_ID,
    Pipeline,
    PipelineFactory,
    ServiceProcess,
    free_port,
    metric_value,
    queue_depth,
    start_service,
)
from tests.support import wait_until
from tests.vhosts import local_rabbitmqctl as rabbitmqctl

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# `make soak` runs these with more users (and so for longer); `make test` with the default.
SCALE = int(os.environ.get("HIKER_SOAK_SCALE", "1"))
REPLY = "hello to you too"
FOLLOWUP = "are you there"


async def deliver_like_meta(
    session: aiohttp.ClientSession, url: str, body: bytes, *, give_up_after: float = 60
) -> list[int]:
    """POST until a 200, as Meta retries; returns every status seen (0: no connection)."""
    statuses: list[int] = []
    deadline = time.monotonic() + give_up_after
    while time.monotonic() < deadline:
        try:
            status, _ = await post_signed(session, url, body, APP_SECRET)
        except (aiohttp.ClientError, TimeoutError):
            status = 0
        statuses.append(status)
        if status == 200:
            return statuses
        await asyncio.sleep(0.2)
    raise AssertionError(f"never accepted: {statuses}")


async def stream(
    session: aiohttp.ClientSession,
    url: Callable[[], str],
    users: list[str],
    per_second: float,
) -> dict[str, list[int]]:
    """Each user says hello once, at a steady rate, delivered until accepted."""

    async def one(user: str, delay: float) -> tuple[str, list[int]]:
        await asyncio.sleep(delay)
        body = encode(webhook_body(messages_change([text_message(user, "hello")])))
        return user, await deliver_like_meta(session, url(), body)

    results = await asyncio.gather(*(one(u, i / per_second) for i, u in enumerate(users)))
    return dict(results)


async def parked_in_doubt(amqp_url: str) -> set[str]:
    """Recipients whose send is parked because its Graph call's outcome is unknown."""
    connection = await aio_pika.connect(amqp_url)
    users: set[str] = set()
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(topology.SENDER_PARKED_QUEUE, passive=True)
        while (message := await queue.get(fail=False, no_ack=True)) is not None:
            assert message.headers[topology.HEADER_PARKED_REASON] == "in_doubt"
            users.add(json.loads(message.body)["to"])
    finally:
        await connection.close()
    return users


async def replied(pipeline: Pipeline, users: int) -> bool:
    """Whether at least that many users got their reply."""
    return len(await texts_by_user(pipeline)) >= users


async def answers(port: int) -> bool:
    client = Redis(port=port)
    try:
        return bool(await client.ping())
    except RedisConnectionError:
        return False
    finally:
        await client.aclose()


async def retried_unreachable(pipeline: Pipeline) -> bool:
    sender = await pipeline.metrics("sender")
    return metric_value(sender, "hiker_send_retries_total", code="none") >= 1


async def texts_by_user(pipeline: Pipeline) -> dict[str, Counter[str]]:
    by_user: dict[str, Counter[str]] = {}
    for message in await pipeline.sent():
        by_user.setdefault(message["to"], Counter())[message["text"]] += 1
    return by_user


def users_for(tag: int, count: int) -> list[str]:
    return [f"1555{tag:03d}{i:05d}" for i in range(count)]


async def send_times(pipeline: Pipeline, users: list[str], webhooks: int = 4) -> list[float]:
    """Post ``hello`` from each of ``users`` in ``webhooks`` webhooks; when the Graph mock
    accepted each reply, in order, once every user has been answered.

    The webhooks go out further apart than the publish linger, so the replies travel in several
    bundles and several senders can share them."""
    share = -(-len(users) // webhooks)
    for start in range(0, len(users), share):
        group = users[start : start + share]
        body = webhook_body(messages_change([text_message(u, "hello") for u in group]))
        assert await pipeline.post(body) == 200
        await asyncio.sleep(0.05)

    async def all_sent() -> bool:
        return len(await pipeline.sent()) == len(users)

    await wait_until(all_sent, 30, "all sends")
    return sorted(m["accepted_at"] for m in await pipeline.sent())


def assert_paced(times: list[float], rate: float) -> None:
    """Meta counts messages per second: no second holds more than ``rate`` sends (one more for
    a slot that began late and the next one on time), and the whole burst took as long as the
    rate makes it. Gaps between two sends vary with the event loop's wake-ups; they are not
    what is limited."""
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= rate + 1, (busiest, times)
    assert times[-1] - times[0] >= (len(times) - 1) / rate * 0.9, times


Restart = Callable[[], Awaitable[None]]


@pytest.fixture
def broker_restarts() -> Iterator[Restart]:
    """Restart the local broker's application; always leaves it running."""
    if not shutil.which("rabbitmqctl") or os.environ.get("HIKER_TEST_AMQP_URL"):
        pytest.skip("needs the local broker and rabbitmqctl")

    async def restart() -> None:
        await asyncio.to_thread(rabbitmqctl, "stop_app")
        try:
            await asyncio.sleep(2.0)
        finally:
            await asyncio.to_thread(rabbitmqctl, "start_app")
            await asyncio.to_thread(rabbitmqctl, "await_startup")

    yield restart
    with contextlib.suppress(Exception):
        rabbitmqctl("start_app")


async def test_broker_restart_mid_stream_loses_and_doubles_nothing(
    make_pipeline: PipelineFactory, broker_restarts: Restart
) -> None:
    pipeline = await make_pipeline(HIKER_IDLE_TIMEOUT_SECONDS="120")
    users = users_for(1, 150 * SCALE)
    streaming = asyncio.create_task(
        stream(pipeline.session, lambda: pipeline.webhook_url, users, per_second=50)
    )
    await wait_until(lambda: replied(pipeline, 10), 30, "the stream to be under way")
    await broker_restarts()
    statuses = await streaming
    assert any(503 in s for s in statuses.values()), "the restart should have been felt"
    assert all(s[-1] == 200 for s in statuses.values())

    async def all_replied() -> bool:
        return len(await texts_by_user(pipeline)) == len(users)

    await wait_until(all_replied, 60, "every user's reply")
    await asyncio.sleep(1.0)
    for user, texts in (await texts_by_user(pipeline)).items():
        assert texts == Counter({REPLY: 1}), user


async def test_redis_stalled_for_a_while_loses_and_doubles_no_followup(
    make_pipeline: PipelineFactory, tmp_path: Path
) -> None:
    if not shutil.which("redis-server"):
        pytest.skip("needs redis-server to run a private Redis that can be stalled")
    port = free_port()
    redis = subprocess.Popen(  # noqa: ASYNC220 - starting a daemon, not waiting on it
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await wait_until(lambda: answers(port), 10, "the private redis-server")
        pipeline = await make_pipeline(
            HIKER_REDIS_URL=f"redis://127.0.0.1:{port}/0", HIKER_IDLE_TIMEOUT_SECONDS="2"
        )
        users = users_for(2, 20 * SCALE)
        for user in users:
            await pipeline.say(user, "hello")
        await wait_until(lambda: replied(pipeline, len(users)), 30, "every reply")
        redis.send_signal(signal.SIGSTOP)  # timers come due while Redis does not answer
        await asyncio.sleep(6)
        redis.send_signal(signal.SIGCONT)

        async def all_followed_up() -> bool:
            texts = await texts_by_user(pipeline)
            return all(texts.get(u, Counter())[FOLLOWUP] >= 1 for u in users)

        await wait_until(all_followed_up, 40, "every follow-up")
        await asyncio.sleep(3)
        for user in users:
            assert (await texts_by_user(pipeline))[user] == Counter({REPLY: 1, FOLLOWUP: 1})
    finally:
        redis.send_signal(signal.SIGCONT)
        redis.terminate()
        redis.wait(10)


@pytest.mark.parametrize("victim", ["ingress", "conversation", "sender"])
async def test_sigkill_mid_stream_loses_and_doubles_nothing(
    victim: str,
    make_pipeline: PipelineFactory,
    spawn: Callable[[str, dict[str, str]], ServiceProcess],
    amqp_url: str,
) -> None:
    others = tuple(s for s in ("ingress", "conversation", "sender") if s != victim)
    http_port = free_port()
    pipeline = await make_pipeline(
        services=("graph", *others),
        HIKER_IDLE_TIMEOUT_SECONDS="3",
        HIKER_CLAIM_LEASE_SECONDS="2",
        HIKER_GRAPH_TIMEOUT_SECONDS="1",
        HIKER_HTTP_PORT=str(http_port),
    )
    process = spawn(victim, pipeline.env)
    await process.start()
    url = f"http://127.0.0.1:{http_port}/webhook" if victim == "ingress" else pipeline.webhook_url
    users = users_for(3, 120 * SCALE)
    streaming = asyncio.create_task(stream(pipeline.session, lambda: url, users, per_second=60))
    await wait_until(lambda: replied(pipeline, 10), 30, "the stream to be under way")
    await process.kill()
    await asyncio.sleep(0.5)
    await spawn(victim, pipeline.env).start()
    await streaming

    in_doubt: set[str] = set()

    async def settled() -> bool:
        nonlocal in_doubt
        texts = await texts_by_user(pipeline)
        in_doubt |= await parked_in_doubt(amqp_url)
        return all(texts.get(u, Counter())[FOLLOWUP] >= 1 or u in in_doubt for u in users)

    await wait_until(settled, 90, "every reply and follow-up")
    await asyncio.sleep(3.5)
    texts = await texts_by_user(pipeline)
    for user in users:
        got = texts.get(user, Counter())
        assert all(count == 1 for count in got.values()), (user, got)
        if user not in in_doubt:
            assert got == Counter({REPLY: 1, FOLLOWUP: 1}), (user, got)
    # Only a sender dying inside a Graph call leaves a send in doubt; it is parked, not lost.
    if victim != "sender":
        assert not in_doubt
    assert len(in_doubt) <= 3 * SCALE


async def test_two_replicas_of_every_service(make_pipeline: PipelineFactory) -> None:
    pipeline = await make_pipeline(HIKER_IDLE_TIMEOUT_SECONDS="2")
    for name in ("ingress", "conversation", "sender"):
        twin = Pipeline(env=pipeline.env, session=pipeline.session, servers={})
        await start_service(twin, name)
        for key, server in twin.servers.items():
            pipeline.servers[f"{key}-2"] = server
    urls = [pipeline.webhook_url, pipeline.url("ingress-2", "/webhook")]
    users = users_for(4, 40 * SCALE)
    for i, user in enumerate(users):
        body = encode(webhook_body(messages_change([text_message(user, "hello")])))
        # Meta may deliver the same webhook twice, to different replicas.
        for url in urls:
            await deliver_like_meta(pipeline.session, url, body)
        await asyncio.sleep(0.01 * (i % 3))

    async def all_followed_up() -> bool:
        texts = await texts_by_user(pipeline)
        return all(texts.get(u, Counter())[FOLLOWUP] >= 1 for u in users)

    await wait_until(all_followed_up, 30, "every follow-up")
    await asyncio.sleep(2.5)
    texts = await texts_by_user(pipeline)
    for user in users:
        assert texts[user] == Counter({REPLY: 1, FOLLOWUP: 1}), user
    firsts, duplicates = [], []
    for name in ("conversation", "conversation-2"):
        text = await pipeline.metrics(name)
        firsts.append(metric_value(text, "hiker_inbound_messages_total", type="text"))
        duplicates.append(metric_value(text, "hiker_duplicates_dropped_total"))
    assert sum(firsts) == len(users)
    assert sum(duplicates) == len(users)
    assert all(f + d > 0 for f, d in zip(firsts, duplicates, strict=True)), "both replicas work"


async def test_two_sender_replicas_share_one_pace(make_pipeline: PipelineFactory) -> None:
    """The pacing slots live in Redis: two senders together keep the rate one would."""
    pipeline = await make_pipeline(
        HIKER_IDLE_TIMEOUT_SECONDS="120", HIKER_SEND_RATE_PER_SECOND="10"
    )
    twin = Pipeline(env=pipeline.env, session=pipeline.session, servers={})
    await start_service(twin, "sender")
    for key, server in twin.servers.items():
        pipeline.servers[f"{key}-2"] = server
    users = users_for(8, 16)
    assert_paced(await send_times(pipeline, users), 10)  # for the pair, not per replica
    counts = [
        metric_value(await pipeline.metrics(name), "hiker_messages_sent_total", kind="reply")
        for name in ("sender", "sender-2")
    ]
    assert sum(counts) == len(users)
    assert min(counts) > 0, "both replicas sent"


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
