"""Where the real RabbitMQ and Redis of the integration tests come from: containers started by
testcontainers, or the services at ``HIKER_TEST_AMQP_URL`` / ``HIKER_TEST_REDIS_URL`` (default:
the local ones). ``tests/conftest.py`` says when which is chosen."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.vhosts import MANAGEMENT_PORT, local_rabbitmqctl

DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
COMPOSE_FILE = Path(__file__).resolve().parents[1] / "deploy" / "compose" / "compose.yaml"


@dataclass(frozen=True)
class Services:
    amqp_url: str  # the broker's root URL (default vhost)
    redis_url: str
    # Runs rabbitmqctl where the broker lives (locally, or inside the container).
    rabbitmqctl: Callable[..., str] | None
    # None: the default port of the broker's host (tests/vhosts.py, management_url_for).
    management_url: str | None


def say(config: pytest.Config, line: str) -> None:
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


def wanted_images() -> tuple[str, str]:
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

    images: tuple[str, ...] = wanted_images()
    if not testcontainers_config.ryuk_disabled:
        images += (testcontainers_config.ryuk_image,)
    return images


def in_containers(rabbitmq_image: str, redis_image: str) -> Iterator[Services]:
    from testcontainers.community.rabbitmq import RabbitMqContainer
    from testcontainers.community.redis import RedisContainer

    with (
        RabbitMqContainer(rabbitmq_image).with_exposed_ports(MANAGEMENT_PORT) as rabbit,
        RedisContainer(redis_image) as redis,
    ):
        host = rabbit.get_container_host_ip()

        def in_container(*args: str) -> str:
            code, output = rabbit.exec(["rabbitmqctl", "-q", *args])
            if code != 0:
                raise RuntimeError(output.decode())
            return str(output.decode())

        management = rabbit.get_exposed_port(MANAGEMENT_PORT)
        yield Services(
            amqp_url=f"amqp://guest:guest@{host}:{rabbit.get_exposed_port(rabbit.port)}/",
            redis_url=f"redis://{redis.get_container_host_ip()}:{redis.get_exposed_port(redis.port)}/0",
            # An image without the management plugin gets its vhosts through rabbitmqctl.
            rabbitmqctl=in_container,
            management_url=f"http://guest:guest@{host}:{management}/",
        )


def local() -> Services:
    return Services(
        amqp_url=os.environ.get("HIKER_TEST_AMQP_URL", DEFAULT_AMQP),
        redis_url=os.environ.get("HIKER_TEST_REDIS_URL", DEFAULT_REDIS),
        rabbitmqctl=local_rabbitmqctl if shutil.which("rabbitmqctl") else None,
        management_url=os.environ.get("HIKER_TEST_RABBIT_MANAGEMENT_URL"),
    )


def use_containers(config: pytest.Config) -> bool:
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
        say(
            config,
            f"A Docker engine answers but lacks {', '.join(missing)}: integration tests use "
            "the local RabbitMQ and Redis (HIKER_TEST_CONTAINERS=1 requires containers).",
        )
    return answers and not missing


def with_test_urls(running: Iterator[Services]) -> Iterator[Services]:
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
