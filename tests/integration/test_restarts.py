"""Services are killed and restarted: nothing that mattered was in their memory."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest

from tests.integration.conftest import PipelineFactory

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


async def test_conversation_killed_with_a_pending_timer_still_sends_one_followup(
    make_pipeline: PipelineFactory, spawn: Callable[[str, dict[str, str]], ServiceProcess]
) -> None:
    pipeline = await make_pipeline(
        services=("graph", "ingress", "sender"), HIKER_IDLE_TIMEOUT_SECONDS="3"
    )
    conversation = spawn("conversation", pipeline.env)
    await conversation.start()
    user = "15550000008"
    await pipeline.say(user, "hello")
    assert await pipeline.wait_for_texts(user, 1) == ["hello to you too"]
    await conversation.kill()  # the timer is in the broker, not in the dead process
    await asyncio.sleep(1.0)
    restarted = spawn("conversation", pipeline.env)
    await restarted.start()
    assert await pipeline.wait_for_texts(user, 2) == ["hello to you too", "are you there"]
    await asyncio.sleep(3.5)
    assert await pipeline.texts(user) == ["hello to you too", "are you there"]


async def test_conversation_down_when_timer_fires_sends_it_on_return(
    make_pipeline: PipelineFactory, spawn: Callable[[str, dict[str, str]], ServiceProcess]
) -> None:
    pipeline = await make_pipeline(
        services=("graph", "ingress", "sender"), HIKER_IDLE_TIMEOUT_SECONDS="1"
    )
    conversation = spawn("conversation", pipeline.env)
    await conversation.start()
    user = "15550000009"
    await pipeline.say(user, "hello")
    await pipeline.wait_for_texts(user, 1)
    await conversation.kill()
    await asyncio.sleep(2.5)  # the timer fires into the fired queue while nobody consumes it
    assert await pipeline.texts(user) == ["hello to you too"]
    restarted = spawn("conversation", pipeline.env)
    await restarted.start()
    assert await pipeline.wait_for_texts(user, 2) == ["hello to you too", "are you there"]
    await asyncio.sleep(1.5)
    assert await pipeline.texts(user) == ["hello to you too", "are you there"]
