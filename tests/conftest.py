"""Where the real RabbitMQ and Redis for integration tests come from, and how runs stay apart.

With a reachable Docker engine, testcontainers starts both. Otherwise the services named by
``HIKER_TEST_AMQP_URL`` / ``HIKER_TEST_REDIS_URL`` are used (default: the local ones). Every test
gets its own RabbitMQ vhost and Redis key prefix, deleted afterwards. Under ``CI`` an unreachable
broker fails the run instead of skipping it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class Services:
    amqp_url: str  # the broker's root URL (default vhost)
    redis_url: str
    # Runs rabbitmqctl where the broker lives (locally, or inside the container).
    rabbitmqctl: Callable[..., str] | None
    management_url: str | None


def _docker_reachable() -> bool:
    if os.environ.get("HIKER_TEST_NO_DOCKER") or not shutil.which("docker"):
        return False
    try:
        result = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _local_rabbitmqctl(*args: str) -> str:
    result = subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout


def _fail_or_skip(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    if _docker_reachable() and not os.environ.get("HIKER_TEST_AMQP_URL"):
        from testcontainers.rabbitmq import RabbitMqContainer
        from testcontainers.redis import RedisContainer

        with (
            RabbitMqContainer("rabbitmq:4.1-management") as rabbit,
            RedisContainer("redis:7") as redis,
        ):
            host = rabbit.get_container_host_ip()
            port = rabbit.get_exposed_port(rabbit.port)

            def in_container(*args: str) -> str:
                code, output = rabbit.exec(["rabbitmqctl", "-q", *args])
                if code != 0:
                    raise RuntimeError(output.decode())
                return str(output.decode())

            yield Services(
                amqp_url=f"amqp://guest:guest@{host}:{port}/",
                redis_url=(
                    f"redis://{redis.get_container_host_ip()}:"
                    f"{redis.get_exposed_port(redis.port)}/0"
                ),
                rabbitmqctl=in_container,
                management_url=None,
            )
        return
    yield Services(
        amqp_url=os.environ.get("HIKER_TEST_AMQP_URL", DEFAULT_AMQP),
        redis_url=os.environ.get("HIKER_TEST_REDIS_URL", DEFAULT_REDIS),
        rabbitmqctl=_local_rabbitmqctl if shutil.which("rabbitmqctl") else None,
        management_url=os.environ.get("HIKER_TEST_RABBIT_MANAGEMENT_URL"),
    )


class VhostAdmin:
    """Creates and deletes vhosts through rabbitmqctl, or the management API when given."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def _api(self, method: str, path: str, body: dict[str, str] | None = None) -> None:
        assert self._services.management_url is not None
        parts = urllib.parse.urlsplit(self._services.management_url)
        url = f"{parts.scheme}://{parts.hostname}:{parts.port}/api/{path}"
        request = urllib.request.Request(url, method=method)
        request.add_header("content-type", "application/json")
        auth = f"{parts.username or 'guest'}:{parts.password or 'guest'}"
        import base64

        request.add_header("authorization", "Basic " + base64.b64encode(auth.encode()).decode())
        data = json.dumps(body).encode() if body is not None else None
        with urllib.request.urlopen(request, data=data, timeout=30):
            pass

    def create(self, vhost: str) -> None:
        user = urllib.parse.urlsplit(self._services.amqp_url).username or "guest"
        if self._services.management_url:
            quoted = urllib.parse.quote(vhost, safe="")
            self._api("PUT", f"vhosts/{quoted}", {})
            self._api(
                "PUT",
                f"permissions/{quoted}/{user}",
                {"configure": ".*", "write": ".*", "read": ".*"},
            )
            return
        ctl = self._services.rabbitmqctl
        if ctl is None:
            _fail_or_skip("neither rabbitmqctl nor HIKER_TEST_RABBIT_MANAGEMENT_URL is available")
            return
        ctl("add_vhost", vhost)
        ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")

    def delete(self, vhost: str) -> None:
        with contextlib.suppress(Exception):
            if self._services.management_url:
                self._api("DELETE", f"vhosts/{urllib.parse.quote(vhost, safe='')}")
            elif self._services.rabbitmqctl is not None:
                self._services.rabbitmqctl("delete_vhost", vhost)


def vhost_url(root: str, vhost: str) -> str:
    parts = urllib.parse.urlsplit(root)
    return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(vhost, safe="")))


@pytest.fixture
def vhost_admin(services: Services) -> VhostAdmin:
    return VhostAdmin(services)


@pytest.fixture
def amqp_url(services: Services, vhost_admin: VhostAdmin) -> Iterator[str]:
    """A fresh vhost on the real broker for this test only."""
    import asyncio

    import aio_pika

    async def probe() -> None:
        connection = await asyncio.wait_for(aio_pika.connect(services.amqp_url), 5)
        await connection.close()

    try:
        asyncio.run(probe())
    except Exception as exc:
        _fail_or_skip(f"RabbitMQ unreachable at {services.amqp_url}: {type(exc).__name__}")
    vhost = f"hiker-test-{uuid.uuid4().hex[:12]}"
    vhost_admin.create(vhost)
    try:
        yield vhost_url(services.amqp_url, vhost)
    finally:
        vhost_admin.delete(vhost)


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
        _fail_or_skip(f"Redis unreachable at {services.redis_url}: {type(exc).__name__}")
    try:
        yield services.redis_url
    finally:
        async for key in client.scan_iter(match=f"{redis_prefix}*", count=1000):
            await client.delete(key)
        await client.aclose()
