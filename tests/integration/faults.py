"""What the fault tests share: streaming webhooks as Meta does, reading what was sent, and
the scale ``make soak`` raises."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import Callable

import aio_pika
import aiohttp
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from hiker.core import topology
from hiker.tools.simulate import encode, messages_change, post_signed, text_message, webhook_body
from tests.integration.conftest import (
    APP_SECRET,
    Pipeline,
    metric_value,
)
from tests.support import wait_until

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
