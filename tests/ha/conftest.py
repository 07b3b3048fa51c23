"""Engines the HA tests start themselves: a Redis Cluster (``tests/ha/redis_engines.py``), a
Redis primary with a replica and sentinels (same module), a RabbitMQ cluster
(``tests/ha/rabbit_cluster.py``). All on this machine, on free ports, with data, logs and config
in temporary directories of their own; stopped and deleted afterwards, also when a test fails.
Nothing here touches the machine's own RabbitMQ or Redis. A missing ``redis-server`` or
``rabbitmq-server`` skips these tests with the reason, and fails them under ``CI``.

They start in ``make test-ha``, not in ``make test``: each engine takes seconds of CPU to boot.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager as ContextManager
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from tests.ha import rabbit_cluster as rabbit
from tests.ha import redis_engines
from tests.ha.rabbit_cluster import RabbitCluster
from tests.ha.redis_engines import RedisClusterEngine, SentinelEngine
from tests.integration.conftest import (  # noqa: F401 - fixtures the HA tests use
    APP_SECRET,
    Pipeline,
    make_pipeline,
)
from tests.support import wait_until as _wait_until

T = TypeVar("T")


def _started(
    factory: pytest.TempPathFactory, name: str, start: Callable[[Path], ContextManager[T]]
) -> Iterator[T]:
    """An engine started in a directory of its own for its data and logs; the directory is
    deleted once the engine is stopped."""
    base = factory.mktemp(name)
    try:
        with start(base) as engine:
            yield engine
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterEngine]:
    yield from _started(tmp_path_factory, "redis-cluster", redis_engines.redis_cluster)


@pytest.fixture(scope="module")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelEngine]:
    yield from _started(tmp_path_factory, "redis-sentinel", redis_engines.redis_sentinel)


@pytest.fixture(scope="module")
def rabbit_cluster() -> Iterator[RabbitCluster]:
    with rabbit.rabbit_cluster() as cluster:
        yield cluster


async def wait_until(condition: Callable[[], Awaitable[Any]], within: float, what: str) -> Any:
    """``tests.support.wait_until``, an error counting as not yet: the engines fail over
    under the condition, and asking them may fail meanwhile."""
    return await _wait_until(condition, within, what, every=0.2, tolerate=(Exception,))


async def ready(pipeline: Pipeline, service: str) -> bool:
    async with pipeline.session.get(pipeline.url(service, "/readyz")) as response:
        return response.status == 200


async def post_until_accepted(
    pipeline: Pipeline, body: bytes, within: float = 120.0
) -> tuple[int, int]:
    """Post ``body`` as Meta does: again, the same bytes, until it is answered 200.

    Returns (attempts, answers other than 200)."""
    deadline = time.monotonic() + within
    attempts = refused = 0
    while True:
        attempts += 1
        try:
            if await pipeline.post(body) == 200:
                return attempts, refused
        except aiohttp.ClientError:
            pass
        refused += 1
        if time.monotonic() > deadline:
            raise AssertionError(f"not accepted after {attempts} attempts")
        await asyncio.sleep(0.5)
