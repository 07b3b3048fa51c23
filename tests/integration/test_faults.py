"""Faults while messages flow: broker restarts, Redis stalls, SIGKILLed services, Graph trouble,
two replicas of everything. Counted at the Graph mock: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from hiker.tools.simulate import encode, messages_change, text_message, webhook_body
from tests.integration.conftest import (
    Pipeline,
    PipelineFactory,
    ServiceProcess,
    free_port,
    metric_value,
    start_service,
)
from tests.integration.faults import (
    FOLLOWUP,
    REPLY,
    SCALE,
    answers,
    assert_paced,
    deliver_like_meta,
    parked_in_doubt,
    replied,
    send_times,
    stream,
    texts_by_user,
    users_for,
)
from tests.support import wait_until
from tests.vhosts import local_rabbitmqctl as rabbitmqctl

pytestmark = [pytest.mark.integration, pytest.mark.slow]


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
