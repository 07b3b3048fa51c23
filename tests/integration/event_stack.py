"""The stack the events tests run: ``hiker events`` in-process against the real RabbitMQ and
Redis, receivers on ephemeral ports, and the events they are fed."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from hiker.core import topology
from hiker.core.broker import Broker
from hiker.core.contracts import Contract, MessageReceived, SendParked, StatusReceived
from hiker.core.settings import EventsSettings, load_settings
from hiker.events.app import create_app
from hiker.events.model import SIGNATURE_HEADER
from tests.support import free_port, queue_depth

SECRET = "test-events-secret-0123456789abcdef"
NUMBER = "100000000000001"


@dataclass
class Receiver:
    """An endpoint: answers ``status`` (after ``delay`` seconds) and keeps what it was sent."""

    port: int = field(default_factory=free_port)
    status: int = 200
    delay: float = 0.0
    bodies: list[bytes] = field(default_factory=list)
    signatures: list[str] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/hiker"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks/hiker", self._take)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _take(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.delay:
            await asyncio.sleep(self.delay)
        status = self.status
        self.bodies.append(body)
        self.signatures.append(request.headers.get(SIGNATURE_HEADER, ""))
        self.answered.append(status)
        return web.Response(status=status)

    def delivered(self) -> list[dict[str, Any]]:
        """Events it answered 2xx to, deduplicated by id (first copy kept)."""
        seen: dict[str, dict[str, Any]] = {}
        for body, status in zip(self.bodies, self.answered, strict=True):
            if 200 <= status < 300:
                event = json.loads(body)
                seen.setdefault(event["id"], event)
        return list(seen.values())


@dataclass
class Stack:
    amqp_url: str
    publisher: Broker
    session: aiohttp.ClientSession
    ops: str = ""

    async def publish(self, exchange: str, routing_key: str, contract: Contract) -> None:
        await self.publisher.publish(
            exchange, routing_key, contract.to_bytes(), type_name=contract.type_name()
        )

    async def metrics(self) -> str:
        async with self.session.get(f"{self.ops}/metrics") as response:
            return await response.text()


StackFactory = Callable[..., Awaitable[Stack]]


@pytest.fixture
async def make_stack(
    amqp_url: str, redis_url: str, redis_prefix: str
) -> AsyncIterator[StackFactory]:
    runners: list[web.AppRunner] = []
    publisher = Broker(amqp_url, client_name="test-publisher")
    session = aiohttp.ClientSession()

    async def start(*receivers: Receiver, **env: str) -> Stack:
        settings = load_settings(
            EventsSettings,
            {
                "HIKER_AMQP_URL": amqp_url,
                "HIKER_REDIS_URL": redis_url,
                "HIKER_REDIS_PREFIX": redis_prefix,
                "HIKER_EVENTS_URLS": ",".join(receiver.url for receiver in receivers),
                "HIKER_EVENTS_SECRET": SECRET,
                "HIKER_EVENTS_TIMEOUT_SECONDS": "2",
                **env,
            },
        )
        runner = web.AppRunner(create_app(settings))
        await runner.setup()
        runners.append(runner)
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        stack = Stack(amqp_url, publisher, session, f"http://127.0.0.1:{port}")
        await until(lambda: ready(stack), "the events service to be ready")
        await publisher.connect(topology.Topology(topology.EXCHANGES))
        return stack

    yield start
    for runner in runners:
        await runner.cleanup()
    await publisher.close()
    await session.close()


async def ready(stack: Stack) -> bool:
    async with stack.session.get(f"{stack.ops}/readyz") as response:
        return response.status == 200


async def until(check: Callable[[], Awaitable[bool]], what: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"waited {within:g} s for {what}")


def message(user: str, n: int) -> MessageReceived:
    return MessageReceived(
        wamid=f"wamid.{user}.{n}",
        phone_number_id=NUMBER,
        user=user,
        wa_id=user,
        message_type="text",
        text=f"message {n}",
        timestamp=1_767_225_600 + n,
        received_at=time.time(),
    )


def status(user: str, wamid: str, state: str) -> StatusReceived:
    return StatusReceived(
        message_id=wamid,
        phone_number_id=NUMBER,
        recipient_id=user,
        status=state,
        timestamp=1_767_225_700,
        received_at=time.time(),
    )


def parked_send(user: str) -> SendParked:
    return SendParked(
        idempotency_key=f"reply:wamid.{user}.0",
        phone_number_id=NUMBER,
        to=user,
        kind="reply",
        correlation_id=f"wamid.{user}.0",
        reason="permanent",
        graph_status="400",
        graph_code="131047",
        graph_error={"code": 131047, "message": "Re-engagement message"},
        parked_at=time.time(),
        action_type="text",
        text="hello to you too",
    )


async def publish_conversations(stack: Stack, users: list[str], per_user: int) -> list[str]:
    """Messages, statuses and a parked send per user, interleaved across users; returns the
    wamids of the messages in the order published."""
    wamids = []
    for n in range(per_user):
        for user in users:
            sent = message(user, n)
            await stack.publish(topology.INBOUND_EXCHANGE, "message.text", sent)
            wamids.append(sent.wamid)
    for user in users:
        await stack.publish(
            topology.INBOUND_EXCHANGE, "status.delivered", status(user, f"wamid.out.{user}", "read")
        )
        await stack.publish(topology.OUTCOMES_EXCHANGE, "parked.reply", parked_send(user))
    return wamids


def endpoint_names(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        if line.startswith("hiker_events_delivered_total{"):
            names.add(line.split('endpoint="', 1)[1].split('"', 1)[0])
    return names


async def answered(receiver: Receiver, status: int) -> bool:
    return status in receiver.answered


async def has(receiver: Receiver, count: int) -> bool:
    return len(receiver.delivered()) >= count


async def posted(receiver: Receiver, count: int) -> bool:
    return len(receiver.bodies) >= count


async def depth_at_least(stack: Stack, queue: str, count: int) -> bool:
    return await queue_depth(stack.amqp_url, queue) >= count
