"""Where the real RabbitMQ and Redis for integration tests come from, and how runs stay apart.

- ``HIKER_TEST_CONTAINERS=1``: testcontainers starts both, from ``HIKER_TEST_RABBITMQ_IMAGE`` and
  ``HIKER_TEST_REDIS_IMAGE`` (default: the images deploy/compose/compose.yaml runs). When they
  cannot start, the integration tests fail; nothing falls back to local services.
- ``HIKER_TEST_AMQP_URL`` / ``HIKER_TEST_REDIS_URL``: the services there.
- Otherwise: containers when a Docker engine answers and already has the images (and Ryuk's,
  unless ``TESTCONTAINERS_RYUK_DISABLED``), else the local services, saying why in one line.

Every test gets its own RabbitMQ vhost and Redis key prefix, deleted afterwards. Under ``CI`` an
unreachable broker fails the run instead of skipping it.

``--fast`` (``make test-fast``) leaves out tests marked ``slow`` or ``deploy``, and those that
took longer than ``HIKER_TEST_FAST_SECONDS`` the last time they ran (kept in pytest's cache).
Tests marked ``containers`` run only when asked for with ``-m containers``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from hypothesis import settings as hypothesis_settings
from redis.asyncio import Redis

from tests.support import (
    ManagementApi,
    Rabbitmqctl,
    VhostPool,
    local_rabbitmqctl,
    vhost_url,
)

# Every log record of the suite is checked for unmasked phone numbers.
pytest_plugins = ["tests.log_masking"]

DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
COMPOSE_FILE = Path(__file__).resolve().parents[1] / "deploy" / "compose" / "compose.yaml"
# rabbitmqctl costs an Erlang VM boot per call, so vhosts are made (and the used ones deleted)
# this many at a time.
VHOST_BATCH = int(os.environ.get("HIKER_TEST_VHOST_BATCH", "16"))
DURATIONS_KEY = "hiker/durations"

# Property tests: a seed fixed per test and the examples pinned with @example, and no example
# database written, so that a run passes or fails on the code alone (CI is no lottery).
# `make fuzz` (HIKER_HYPOTHESIS_PROFILE=fuzz) explores: fresh seeds, 25 times the examples.
hypothesis_settings.register_profile("ci", max_examples=200, derandomize=True, database=None)
hypothesis_settings.register_profile("fuzz", max_examples=5000, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HIKER_HYPOTHESIS_PROFILE", "ci"))


@dataclass(frozen=True)
class Services:
    amqp_url: str  # the broker's root URL (default vhost)
    redis_url: str
    # Runs rabbitmqctl where the broker lives (locally, or inside the container).
    rabbitmqctl: Callable[..., str] | None
    management_url: str | None


def _fail_or_skip(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


def _say(config: pytest.Config, line: str) -> None:
    """One line on the terminal, past output capturing (fixtures run captured)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        reporter.ensure_newline()
        reporter.write_line(line, yellow=True)


def compose_images() -> tuple[str, str]:
    """The RabbitMQ and Redis images that deploy/compose runs."""
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    return services["rabbitmq"]["image"], services["redis"]["image"]


def _wanted_images() -> tuple[str, str]:
    rabbitmq, redis = compose_images()
    return (
        os.environ.get("HIKER_TEST_RABBITMQ_IMAGE") or rabbitmq,
        os.environ.get("HIKER_TEST_REDIS_IMAGE") or redis,
    )


def _engine_listens() -> bool:
    """Whether something accepts connections where DOCKER_HOST points. Asked first because
    docker-py leaks its socket when the engine is absent, which warnings-as-errors turns into a
    failed test."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(2)
                sock.connect(host.removeprefix("unix://"))
        elif host.startswith(("tcp://", "http://", "https://")):
            parts = urllib.parse.urlsplit(host)
            with socket.create_connection((parts.hostname or "", parts.port or 2375), timeout=2):
                pass
    except OSError:
        return False
    return True


def _engine_without(images: tuple[str, ...]) -> tuple[bool, list[str]]:
    """Whether a Docker engine answers, and which of ``images`` it does not have."""
    if os.environ.get("HIKER_TEST_NO_DOCKER") or not _engine_listens():
        return False, []
    try:
        import docker
        from docker.errors import DockerException, ImageNotFound
    except ImportError:
        return False, []
    try:
        client = docker.from_env(timeout=5)
    except DockerException:
        return False, []
    missing = []
    try:
        client.ping()
        for image in images:
            try:
                client.images.get(image)
            except ImageNotFound:
                missing.append(image)
    except (DockerException, OSError):
        return False, []
    finally:
        client.close()
    return True, missing


def _container_images() -> tuple[str, ...]:
    from testcontainers.core.config import testcontainers_config

    images = _wanted_images()
    if not testcontainers_config.ryuk_disabled:
        images += (testcontainers_config.ryuk_image,)
    return images


def _in_containers(rabbitmq_image: str, redis_image: str) -> Iterator[Services]:
    from testcontainers.community.rabbitmq import RabbitMqContainer
    from testcontainers.community.redis import RedisContainer

    management = 15672
    with (
        RabbitMqContainer(rabbitmq_image).with_exposed_ports(management) as rabbit,
        RedisContainer(redis_image) as redis,
    ):
        host = rabbit.get_container_host_ip()

        def in_container(*args: str) -> str:
            code, output = rabbit.exec(["rabbitmqctl", "-q", *args])
            if code != 0:
                raise RuntimeError(output.decode())
            return str(output.decode())

        management_url = f"http://guest:guest@{host}:{rabbit.get_exposed_port(management)}/"
        yield Services(
            amqp_url=f"amqp://guest:guest@{host}:{rabbit.get_exposed_port(rabbit.port)}/",
            redis_url=f"redis://{redis.get_container_host_ip()}:{redis.get_exposed_port(redis.port)}/0",
            rabbitmqctl=in_container,
            # An image without the management plugin gets its vhosts through rabbitmqctl.
            management_url=management_url if _management_answers(management_url) else None,
        )


def _management_answers(url: str) -> bool:
    # The plugin may start listening a moment after AMQP, which is what the container awaited.
    deadline = time.monotonic() + 10
    while True:
        try:
            ManagementApi(url, "guest").overview()
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)
        else:
            return True


def _local() -> Services:
    return Services(
        amqp_url=os.environ.get("HIKER_TEST_AMQP_URL", DEFAULT_AMQP),
        redis_url=os.environ.get("HIKER_TEST_REDIS_URL", DEFAULT_REDIS),
        rabbitmqctl=local_rabbitmqctl if shutil.which("rabbitmqctl") else None,
        management_url=os.environ.get("HIKER_TEST_RABBIT_MANAGEMENT_URL"),
    )


def _use_containers(config: pytest.Config) -> bool:
    if os.environ.get("HIKER_TEST_CONTAINERS") == "1":
        answers, missing = _engine_without(_container_images())
        if not answers or missing:
            why = "no Docker engine answers" if not answers else f"missing images {missing}"
            pytest.fail(
                f"HIKER_TEST_CONTAINERS=1 but {why} (DOCKER_HOST={os.environ.get('DOCKER_HOST')}"
                "; make test-containers builds the stand-in images)",
                pytrace=False,
            )
        return True
    if os.environ.get("HIKER_TEST_AMQP_URL"):
        return False
    answers, missing = _engine_without(_container_images())
    if answers and missing:
        _say(
            config,
            f"A Docker engine answers but lacks {', '.join(missing)}: integration tests use "
            "the local RabbitMQ and Redis (HIKER_TEST_CONTAINERS=1 requires containers).",
        )
    return answers and not missing


@pytest.fixture(scope="session")
def services(pytestconfig: pytest.Config) -> Iterator[Services]:
    if _use_containers(pytestconfig):
        yield from _with_test_urls(_in_containers(*_wanted_images()))
    else:
        yield _local()


def _with_test_urls(running: Iterator[Services]) -> Iterator[Services]:
    """Publishes the containers' URLs as HIKER_TEST_AMQP_URL / HIKER_TEST_REDIS_URL while they
    run: tests that act on the local broker itself (stopping it, say) look there to know that
    the broker under test is another one, and skip."""
    saved = {key: os.environ.get(key) for key in ("HIKER_TEST_AMQP_URL", "HIKER_TEST_REDIS_URL")}
    try:
        for found in running:
            os.environ["HIKER_TEST_AMQP_URL"] = found.amqp_url
            os.environ["HIKER_TEST_REDIS_URL"] = found.redis_url
            yield found
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def vhost_pool(services: Services) -> Iterator[VhostPool | None]:
    """None when no way to make vhosts is at hand (a test asking for one then skips, or fails
    under CI)."""
    user = urllib.parse.urlsplit(services.amqp_url).username or "guest"
    if services.management_url:
        pool = VhostPool(ManagementApi(services.management_url, user), batch=1)
    elif services.rabbitmqctl is not None:
        pool = VhostPool(Rabbitmqctl(services.rabbitmqctl, user), batch=VHOST_BATCH)
    else:
        yield None
        return
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
        _fail_or_skip(f"RabbitMQ unreachable at {services.amqp_url}")
    if vhost_pool is None:
        _fail_or_skip("neither rabbitmqctl nor HIKER_TEST_RABBIT_MANAGEMENT_URL is available")
        return
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
        _fail_or_skip(f"Redis unreachable at {services.redis_url}: {type(exc).__name__}")
    try:
        yield services.redis_url
    finally:
        async for key in client.scan_iter(match=f"{redis_prefix}*", count=1000):
            await client.delete(key)
        await client.aclose()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fast",
        action="store_true",
        help="the edit loop: leave out slow and deploy tests, and those slower than "
        "HIKER_TEST_FAST_SECONDS in their last run",
    )


def _asked_for(config: pytest.Config, marker: str) -> bool:
    return marker in (config.getoption("markexpr") or "")


_FAST_LEFT_OUT = pytest.StashKey[int]()
# Seconds per test id in this session (pytest_runtest_logreport has no config to stash them on).
_timings: dict[str, float] = {}


def _fast_limit() -> float:
    return float(os.environ.get("HIKER_TEST_FAST_SECONDS", "3"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    integration = Path(__file__).resolve().parent / "integration"
    for item in items:
        # A new integration test module that forgets its pytestmark still counts as one.
        if item.path.is_relative_to(integration):
            item.add_marker(pytest.mark.integration)
    fast = config.getoption("fast")
    cache = getattr(config, "cache", None)  # absent under -p no:cacheprovider
    last: dict[str, float] = cache.get(DURATIONS_KEY, {}) if cache is not None else {}

    def left_out(item: pytest.Item) -> bool:
        if item.get_closest_marker("containers"):
            return not _asked_for(config, "containers")
        return fast and bool(
            item.get_closest_marker("slow")
            or item.get_closest_marker("deploy")
            or last.get(item.nodeid, 0.0) > _fast_limit()
        )

    keep = [item for item in items if not left_out(item)]
    drop = [item for item in items if left_out(item)]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    if fast:
        config.stash[_FAST_LEFT_OUT] = len(drop)


def pytest_report_collectionfinish(config: pytest.Config) -> str | None:
    if _FAST_LEFT_OUT not in config.stash:
        return None
    return (
        f"--fast: {config.stash[_FAST_LEFT_OUT]} tests left out (slow, deploy, or over "
        f"{_fast_limit():g} s when they last ran); make test runs them all"
    )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # The test's own run only: shared setup (a batch of vhosts, a container) lands on whichever
    # test comes first and says nothing about that test.
    if report.when == "call":
        _timings[report.nodeid] = report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    cache = getattr(session.config, "cache", None)
    if cache is None or not _timings:
        return
    known: dict[str, float] = cache.get(DURATIONS_KEY, {})
    known.update({nodeid: round(seconds, 3) for nodeid, seconds in _timings.items()})
    cache.set(DURATIONS_KEY, known)
