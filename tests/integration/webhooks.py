"""Posting webhooks to an in-process ingress, for the hostile-input tests."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from multidict import CIMultiDict

from hiker.core import topology
from hiker.tools.simulate import encode, messages_change, text_message, webhook_body
from tests.integration.conftest import APP_SECRET, Pipeline, PipelineFactory, queue_depth

BODY_LIMIT = 1024 * 1024
SECRET = APP_SECRET.encode()


@pytest.fixture
async def ingress(make_pipeline: PipelineFactory) -> Pipeline:
    """Ingress alone, its body limit 1 MiB (the default, named here for the tests)."""
    return await make_pipeline(services=("ingress",), HIKER_MAX_BODY_BYTES=str(BODY_LIMIT))


async def published(amqp_url: str) -> tuple[int, int]:
    """Events in the conversation and inspection queues: (0, 0) when nothing got through."""
    return (
        await queue_depth(amqp_url, topology.CONVERSATION_INBOUND_QUEUE),
        await queue_depth(amqp_url, topology.INSPECT_QUEUE),
    )


async def wait_for_depth(amqp_url: str, queue: str, depth: int, within: float = 10.0) -> int:
    deadline = time.monotonic() + within
    current = await queue_depth(amqp_url, queue)
    while current < depth and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        current = await queue_depth(amqp_url, queue)
    return current


Post = Callable[..., Coroutine[Any, Any, int]]


def poster(pipeline: Pipeline) -> Post:
    async def post(
        body: bytes, headers: CIMultiDict[str] | dict[str, str] | None = None, **kwargs: Any
    ) -> int:
        # aiohttp wants large bodies as a stream (it warns otherwise); the bytes sent are the same.
        data = io.BytesIO(body) if isinstance(body, bytes) and len(body) > 256 * 1024 else body
        async with pipeline.session.post(
            pipeline.webhook_url, data=data, headers=headers, **kwargs
        ) as response:
            await response.read()
            return response.status

    return post


def in_loop(loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, int]) -> int:
    """Run ``coroutine`` on the test's loop from Hypothesis's worker thread."""
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=60)


def hello_body(user: str = "15550009999") -> bytes:
    return encode(webhook_body(messages_change([text_message(user, "hello")])))
