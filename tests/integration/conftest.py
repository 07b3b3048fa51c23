"""The whole pipeline in-process: ingress, conversation, sender and the Graph mock, each built by
its own ``create_app`` against the real broker and Redis, on ephemeral ports."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from redis import exceptions as redis_exceptions
from redis.asyncio import Redis

from hiker.conversation.app import create_app as create_conversation
from hiker.core.settings import (
    ConversationSettings,
    GraphMockSettings,
    IngressSettings,
    SenderSettings,
    load_settings,
)
from hiker.graphmock.app import create_app as create_graph_mock
from hiker.ingress.app import OPS_APP
from hiker.ingress.app import create_app as create_ingress
from hiker.sender.app import create_app as create_sender
from hiker.tools.simulate import encode, messages_change, post_signed, text_message, webhook_body
from tests.support import free_port, metric_value, queue_depth, queued_contracts

# The test modules import these helpers from here.
__all__ = ["free_port", "metric_value", "queue_depth", "queued_contracts"]

pytestmark = pytest.mark.integration

# As long as real ones: shorter secrets refuse to start (core.secret_policy).
APP_SECRET = "test-app-secret-0123456789abcdef"
VERIFY_TOKEN = "test-verify-token"
ACCESS_TOKEN = "test-access-token-" + "0123456789abcdef" * 3


def graph_token(tag: str) -> str:
    """A Graph access token as long as a real one, that shows ``tag``."""
    return f"{tag}-" + "0123456789abcdef" * 4


PHONE_NUMBER_ID = "100000000000001"


@dataclass
class Pipeline:
    env: dict[str, str]
    session: aiohttp.ClientSession
    servers: dict[str, TestServer] = field(default_factory=dict)

    def url(self, name: str, path: str) -> str:
        return str(self.servers[name].make_url(path))

    @property
    def webhook_url(self) -> str:
        return self.url("ingress", "/webhook")

    async def post(self, body: dict[str, Any] | bytes) -> int:
        raw = body if isinstance(body, bytes) else encode(body)
        status, _ = await post_signed(self.session, self.webhook_url, raw, APP_SECRET)
        return status

    async def say(self, user: str, text: str, *, wamid: str | None = None) -> str:
        """Post a text message from ``user``; returns its wamid."""
        message = text_message(user, text, wamid=wamid)
        assert await self.post(webhook_body(messages_change([message]))) == 200
        return str(message["id"])

    async def sent(self, to: str | None = None) -> list[dict[str, Any]]:
        params = {"to": to} if to else {}
        async with self.session.get(self.url("graph", "/_mock/messages"), params=params) as r:
            result: list[dict[str, Any]] = await r.json()
            return result

    async def texts(self, to: str) -> list[str]:
        return [m["text"] for m in await self.sent(to)]

    async def wait_for_texts(self, to: str, count: int, within: float = 15.0) -> list[str]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            texts = await self.texts(to)
            if len(texts) >= count:
                return texts
            await asyncio.sleep(0.05)
        raise AssertionError(f"expected {count} messages to {to}, got {await self.texts(to)}")

    async def upload_media(self, data: bytes, content_type: str = "image/jpeg") -> str:
        """Upload a medium (a JPEG unless told) to the Graph mock as a business would; its
        media id."""
        form = aiohttp.FormData()
        form.add_field("messaging_product", "whatsapp")
        form.add_field("type", content_type)
        extension = "jpg" if content_type == "image/jpeg" else content_type.split("/")[-1]
        form.add_field("file", data, filename=f"p.{extension}", content_type=content_type)
        async with self.session.post(
            self.url("graph", f"/v23.0/{PHONE_NUMBER_ID}/media"),
            data=form,
            headers={"Authorization": f"Bearer {ACCESS_TOKEN}"},
        ) as response:
            assert response.status == 200
            return str((await response.json())["id"])

    async def script_faults(self, to: str, *responses: dict[str, Any]) -> None:
        body = {"to": to, "responses": list(responses)}
        async with self.session.post(self.url("graph", "/_mock/faults"), json=body) as r:
            assert r.status == 200

    async def metrics(self, name: str) -> str:
        async with self.session.get(self.url(name, "/metrics")) as response:
            return await response.text()

    async def start(self, name: str, app: web.Application) -> TestServer:
        server = TestServer(app)
        await server.start_server()
        self.servers[name] = server
        return server

    async def stop(self, name: str) -> None:
        await self.servers.pop(name).close()


PipelineFactory = Callable[..., Awaitable[Pipeline]]


def service_env(amqp_url: str, redis_url: str, redis_prefix: str) -> dict[str, str]:
    """What every service of a test pipeline is configured with (a test adds its own)."""
    return {
        "HIKER_AMQP_URL": amqp_url,
        "HIKER_REDIS_URL": redis_url,
        "HIKER_REDIS_PREFIX": redis_prefix,
        "HIKER_APP_SECRET": APP_SECRET,
        "HIKER_VERIFY_TOKEN": VERIFY_TOKEN,
        "HIKER_ACCESS_TOKEN": ACCESS_TOKEN,
        "HIKER_IDLE_TIMEOUT_SECONDS": "1.5",
        "HIKER_SEND_RATE_PER_SECOND": "0",
    }


@pytest.fixture
async def make_pipeline(
    amqp_url: str, redis_url: str, redis_prefix: str
) -> AsyncIterator[PipelineFactory]:
    """Build the pipeline with environment overrides (e.g. a short idle timeout)."""
    pipelines: list[Pipeline] = []

    async def build(
        *, services: tuple[str, ...] = ("graph", "ingress", "conversation", "sender"), **env: str
    ) -> Pipeline:
        base = service_env(amqp_url, redis_url, redis_prefix) | env
        pipeline = Pipeline(env=base, session=aiohttp.ClientSession())
        pipelines.append(pipeline)
        if "graph" in services:
            graph = await pipeline.start(
                "graph", create_graph_mock(load_settings(GraphMockSettings, base))
            )
            base.setdefault("HIKER_GRAPH_BASE_URL", str(graph.make_url("")))
        for name in services:
            if name != "graph":
                await start_service(pipeline, name)
        return pipeline

    yield build
    for pipeline in pipelines:
        for name in list(pipeline.servers)[::-1]:
            await pipeline.stop(name)
        await pipeline.session.close()


async def start_service(pipeline: Pipeline, name: str) -> None:
    """Start one service of ``pipeline`` and wait until it is connected and consuming."""
    env = pipeline.env
    if name == "ingress":
        app = create_ingress(load_settings(IngressSettings, env))
        await pipeline.start("ingress", app)
        await pipeline.start("ingress-ops", app[OPS_APP])
        ready_url = pipeline.url("ingress-ops", "/readyz")
    elif name == "conversation":
        await pipeline.start(
            "conversation", create_conversation(load_settings(ConversationSettings, env))
        )
        ready_url = pipeline.url("conversation", "/readyz")
    elif name == "sender":
        await pipeline.start("sender", create_sender(load_settings(SenderSettings, env)))
        ready_url = pipeline.url("sender", "/readyz")
    else:
        raise ValueError(name)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        async with pipeline.session.get(ready_url) as response:
            # Ready means declared and consuming (Broker.mark_serving): nothing left to wait for.
            if response.status == 200:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} did not become ready")


class PrivateRedis:
    """A redis-server of this test's own: it can be killed, brought back, filled, demoted."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: ASYNC220 - a daemon for the test, not awaited
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory),
             "--repl-diskless-sync-delay", "0"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        client = Redis.from_url(self.url)
        try:
            for _ in range(100):
                try:
                    await client.ping()
                    return
                except (OSError, redis_exceptions.ConnectionError):
                    await asyncio.sleep(0.05)
            raise RuntimeError("private redis-server did not start")
        finally:
            await client.aclose()

    def client(self) -> Redis:
        return Redis.from_url(self.url)

    async def command(self, *args: str | int) -> Any:
        """Run one command on this server (CONFIG SET, REPLICAOF...) over a fresh connection."""
        client = self.client()
        try:
            return await client.execute_command(*args)
        finally:
            await client.aclose()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


PrivateRedisFactory = Callable[[], Awaitable[PrivateRedis]]


@pytest.fixture
async def private_redis_factory(tmp_path: Path) -> AsyncIterator[PrivateRedisFactory]:
    """Start private redis-servers on demand; every one is killed after the test."""
    if not shutil.which("redis-server"):
        pytest.skip("needs redis-server to run a private Redis that can be killed")
    servers: list[PrivateRedis] = []

    async def start() -> PrivateRedis:
        directory = tmp_path / f"redis-{len(servers)}"
        directory.mkdir()
        server = PrivateRedis(directory)
        servers.append(server)
        await server.start()
        return server

    yield start
    for server in servers:
        server.kill()


@pytest.fixture
async def private_redis(private_redis_factory: PrivateRedisFactory) -> PrivateRedis:
    return await private_redis_factory()


class ServiceProcess:
    """``hiker <service>`` as a real child process, so that it can be SIGKILLed."""

    def __init__(self, service: str, env: dict[str, str]) -> None:
        self.service = service
        self.port = free_port()
        self.env = {**os.environ, **env, "HIKER_METRICS_PORT": str(self.port)}
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hiker", self.service,
            env=self.env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                try:
                    async with session.get(f"http://127.0.0.1:{self.port}/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"{self.service} did not become ready")

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 20)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


@pytest.fixture
async def spawn() -> AsyncIterator[Callable[[str, dict[str, str]], ServiceProcess]]:
    processes: list[ServiceProcess] = []

    def make(service: str, env: dict[str, str]) -> ServiceProcess:
        process = ServiceProcess(service, env)
        processes.append(process)
        return process

    yield make
    for process in processes:
        await process.stop()
