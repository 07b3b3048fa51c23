"""The real RabbitMQ and Redis every integration test gets, each test apart from the others.

- ``HIKER_TEST_CONTAINERS=1``: testcontainers starts both, from ``HIKER_TEST_RABBITMQ_IMAGE`` and
  ``HIKER_TEST_REDIS_IMAGE`` (default: the images deploy/compose/compose.yaml runs). When they
  cannot start, the integration tests fail; nothing falls back to local services.
- ``HIKER_TEST_AMQP_URL`` / ``HIKER_TEST_REDIS_URL``: the services there.
- Otherwise: containers when a Docker engine answers and already has the images (and Ryuk's,
  unless ``TESTCONTAINERS_RYUK_DISABLED``), else the local services, saying why in one line.

Every test gets its own RabbitMQ vhost (through the management API, at
``HIKER_TEST_RABBIT_MANAGEMENT_URL`` or port 15672 of the broker's host, else ``rabbitmqctl``)
and its own Redis key prefix, deleted afterwards. Under ``CI`` an unreachable broker fails the
run instead of skipping it. The helpers are in ``tests/services.py`` and ``tests/vhosts.py``;
``--fast`` is in ``tests/fast.py``.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from hypothesis import settings as hypothesis_settings
from redis.asyncio import Redis

from tests.fast import (  # noqa: F401 - hooks: pytest finds them in this module
    pytest_addoption,
    pytest_collection_modifyitems,
    pytest_report_collectionfinish,
    pytest_runtest_logreport,
    pytest_sessionfinish,
)
from tests.services import (
    Services,
    in_containers,
    local,
    say,
    use_containers,
    wanted_images,
    with_test_urls,
)
from tests.support import fail_or_skip
from tests.vhosts import Rabbitmqctl, VhostPool, vhost_admin, vhost_url

# Every log record of the suite is checked for unmasked phone numbers.
pytest_plugins = ["tests.log_masking"]

# Property tests: a seed fixed per test and the examples pinned with @example, and no example
# database written, so that a run passes or fails on the code alone (CI is no lottery).
# `make fuzz` (HIKER_HYPOTHESIS_PROFILE=fuzz) explores: fresh seeds, 25 times the examples.
hypothesis_settings.register_profile("ci", max_examples=200, derandomize=True, database=None)
hypothesis_settings.register_profile("fuzz", max_examples=5000, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HIKER_HYPOTHESIS_PROFILE", "ci"))

__all__ = ["Services"]


@pytest.fixture(scope="session")
def services(pytestconfig: pytest.Config) -> Iterator[Services]:
    if use_containers(pytestconfig):
        yield from with_test_urls(in_containers(*wanted_images()))
    else:
        yield local()


@pytest.fixture(scope="session")
def vhost_pool(services: Services, pytestconfig: pytest.Config) -> Iterator[VhostPool | None]:
    """None when no way to make vhosts is at hand (a test asking for one then skips, or fails
    under CI)."""
    admin = vhost_admin(
        services.amqp_url,
        management_url=services.management_url,
        rabbitmqctl=services.rabbitmqctl,
        # A container's plugin may start listening a moment after AMQP, which is what the
        # container awaited; a local broker's answers at once or not at all.
        wait=10.0 if services.management_url else 0.0,
    )
    if admin is None:
        yield None
        return
    if isinstance(admin, Rabbitmqctl):
        say(
            pytestconfig,
            "No RabbitMQ management API answers: vhosts come from rabbitmqctl, half a "
            "CPU-second a call (rabbitmq-plugins enable rabbitmq_management makes it cheap).",
        )
    pool = VhostPool(admin)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="session")
def broker_reachable(services: Services) -> bool:
    import aio_pika

    async def probe() -> None:
        connection = await asyncio.wait_for(aio_pika.connect(services.amqp_url), 5)
        await connection.close()

    try:
        asyncio.run(probe())
    except Exception:
        return False
    return True


@pytest.fixture
def amqp_url(
    services: Services, vhost_pool: VhostPool | None, broker_reachable: bool
) -> Iterator[str]:
    """A fresh vhost on the real broker for this test only."""
    if not broker_reachable:
        fail_or_skip(f"RabbitMQ unreachable at {services.amqp_url}")
    if vhost_pool is None:
        fail_or_skip("neither the RabbitMQ management API nor rabbitmqctl is available")
    vhost = vhost_pool.take()
    try:
        yield vhost_url(services.amqp_url, vhost)
    finally:
        vhost_pool.give_back(vhost)


@pytest.fixture
def redis_prefix() -> str:
    return f"hiker-test-{uuid.uuid4().hex[:12]}:"


@pytest.fixture
async def redis_url(services: Services, redis_prefix: str) -> AsyncIterator[str]:
    """The real Redis; every key this test's prefix made is deleted afterwards."""
    client = Redis.from_url(services.redis_url, socket_connect_timeout=3)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        fail_or_skip(f"Redis unreachable at {services.redis_url}: {type(exc).__name__}")
    try:
        yield services.redis_url
    finally:
        async for key in client.scan_iter(match=f"{redis_prefix}*", count=1000):
            await client.delete(key)
        await client.aclose()
