"""Helpers every test tier shares, and the benchmarks too: free ports, Prometheus samples, queue
contents, waiting on a condition, and skipping (or failing, under ``CI``) for a missing service.
The vhosts that keep integration tests apart are in ``tests/vhosts.py``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import aio_pika
import pytest
from prometheus_client.parser import text_string_to_metric_families


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fail_or_skip(reason: str) -> NoReturn:
    """Skip the test for a missing service or tool; under ``CI`` fail it instead, so that a
    broken machine cannot pass as a green run."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


# --- Prometheus ------------------------------------------------------------------------------


def samples(text: str, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
    """The samples named ``name`` in Prometheus text exposition whose labels include
    ``labels``, with their labels (a counter's ``_total`` and a histogram's ``_bucket``,
    ``_count`` and ``_sum`` are sample names)."""
    found = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                found.append((dict(sample.labels), float(sample.value)))
    return found


def metric_value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples named ``name`` whose labels include ``labels`` (0 when none)."""
    return sum(value for _, value in samples(text, name, **labels))


# --- RabbitMQ queues -------------------------------------------------------------------------


async def queue_depth(amqp_url: str, queue: str) -> int:
    """Messages ready in ``queue`` right now (a passive declare: nothing is created)."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)
    finally:
        await connection.close()


async def wait_for_depth(amqp_url: str, queue: str, depth: int, within: float = 15.0) -> None:
    """Until ``queue`` holds ``depth`` ready messages."""
    deadline = time.monotonic() + within
    while (current := await queue_depth(amqp_url, queue)) != depth:
        assert time.monotonic() < deadline, f"{queue} holds {current}, expected {depth}"
        await asyncio.sleep(0.05)


async def take_all(amqp_url: str, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Take every message now in ``queue`` (acked: the test consumes them)."""
    connection = await aio_pika.connect(amqp_url)
    messages = []
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        while (message := await declared.get(fail=False, no_ack=True)) is not None:
            messages.append(message)
    finally:
        await connection.close()
    return messages


async def queued_contracts(amqp_url: str, queue: str) -> list[dict[str, Any]]:
    """Every contract waiting in ``queue``, bundles unpacked; the messages stay queued."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        contracts: list[dict[str, Any]] = []
        # Held unacknowledged until the connection closes, which gives them all back.
        while (message := await declared.get(no_ack=False, fail=False)) is not None:
            body = json.loads(message.body)
            contracts.extend(body if isinstance(body, list) else [body])
        return contracts
    finally:
        await connection.close()


# --- waiting on a condition ------------------------------------------------------------------


async def wait_until(
    condition: Callable[[], Awaitable[Any]],
    within: float,
    what: str,
    *,
    every: float = 0.1,
    tolerate: tuple[type[BaseException], ...] = (),
) -> Any:
    """Poll ``condition`` until it returns something true, and return that; fail naming
    ``what`` after ``within`` seconds. Exceptions of the ``tolerate`` types count as not yet
    (an engine still starting, a service restarting)."""
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(*tolerate):
            if result := await condition():
                return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {within:g}s waiting for {what}")
        await asyncio.sleep(every)


async def wait_for_metric(
    scrape: Callable[[], Awaitable[str]],
    name: str,
    value: float,
    *,
    within: float = 15.0,
    **labels: str,
) -> None:
    """Until the samples ``name`` with ``labels`` on the page ``scrape`` returns sum to
    ``value``: what a service counts once it has handled something."""

    async def reached() -> bool:
        return metric_value(await scrape(), name, **labels) == value

    shown = ",".join(f"{k}={v}" for k, v in labels.items())
    await wait_until(reached, within, f"{name}{{{shown}}} to reach {value:g}", every=0.05)


def wait_until_sync(
    condition: Callable[[], Any],
    within: float,
    what: str,
    *,
    every: float = 0.3,
    tolerate: tuple[type[BaseException], ...] = (Exception,),
) -> Any:
    """``wait_until`` for code outside an event loop (starting daemons in a fixture)."""
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(*tolerate):
            if result := condition():
                return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {within:g}s waiting for {what}")
        time.sleep(every)
