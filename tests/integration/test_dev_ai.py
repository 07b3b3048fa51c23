"""``make run`` (``hiker dev``) starts ``hiker aimock`` and points the AI responder at it, while
the README's walk-through stays as it was: a rule still answers ``hello``."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.devstack import DEADLINE_SECONDS, Terminal, dev_env, wait_until_ready

pytestmark = pytest.mark.integration

USER = "15550007001"
ASKER = "15550007002"
HANDED = "15550007003"


async def sent_to(session: aiohttp.ClientSession, graph: str, user: str) -> list[str]:
    async with session.get(f"{graph}/_mock/messages", params={"to": user}) as response:
        sent: list[dict[str, Any]] = await response.json()
    return [m["text"] for m in sent]


async def simulate_text(env: dict[str, str], user: str, text: str) -> None:
    simulate = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hiker", "simulate", "--from", user, "--text", text,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(simulate.communicate(), 60)
    assert simulate.returncode == 0, output.decode()


async def wait_for_text(
    session: aiohttp.ClientSession, graph: str, user: str, part: str, terminal: Terminal
) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not any(part in text for text in await sent_to(session, graph, user)):
        assert time.monotonic() < deadline, terminal.shown()
        await asyncio.sleep(0.2)


async def test_make_run_starts_the_model_stand_in_and_rules_still_answer_first(
    tmp_path: Path, amqp_url: str, redis_url: str, redis_prefix: str
) -> None:
    metrics_base, env = dev_env(tmp_path, amqp_url, redis_url, redis_prefix)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hiker", "dev",
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    terminal = Terminal(process)
    aimock = f"http://127.0.0.1:{env['HIKER_AIMOCK_PORT']}"
    graph = f"http://127.0.0.1:{env['HIKER_GRAPH_MOCK_PORT']}"
    try:
        await wait_until_ready(terminal, metrics_base)
        assert (
            f"dev: no HIKER_AI_BASE_URL; the AI responder asks the stand-in at {aimock}/v1 "
            "(model hiker-mock)"
        ) in terminal.lines
        assert f"dev: asked of the model: curl {aimock}/_mock/requests" in terminal.lines
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{aimock}/v1/models") as response:
                models = await response.json()
            assert "hiker-mock" in {m["id"] for m in models["data"]}

            simulate = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hiker", "simulate", "--from", USER, "--text", "hello",
                env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            output, _ = await asyncio.wait_for(simulate.communicate(), 60)
            assert simulate.returncode == 0, output.decode()
            deadline = time.monotonic() + DEADLINE_SECONDS
            while "hello to you too" not in await sent_to(session, graph, USER):
                assert time.monotonic() < deadline, terminal.shown()
                await asyncio.sleep(0.2)
            # A rule answered: the model was not asked.
            async with session.get(f"{aimock}/_mock/requests") as response:
                asked = [r["path"] for r in await response.json()]
            assert "/v1/chat/completions" not in asked

            # docs/ai.md's "Try it": what no rule takes, the model answers; asked for a person,
            # it hands the conversation over and says so.
            await simulate_text(env, ASKER, "what can you do?")
            await wait_for_text(session, graph, ASKER, "I am hiker aimock", terminal)
            await simulate_text(env, HANDED, "can I talk to a person?")
            await wait_for_text(session, graph, HANDED, "a person", terminal)
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 60) == 0, terminal.shown()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await terminal.reading
