"""A scripted model for the AI pipeline's integration tests, in this process or in a
conversation child process (over HTTP, so that it can be SIGKILLed mid-call)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from hiker.conversation.app import create_app as create_conversation
from hiker.core.ai_model import (
    ChatMessage,
    Completion,
    ToolSpec,
    Transcript,
    Usage,
)
from hiker.core.settings import ConversationSettings, load_settings
from tests.integration.conftest import Pipeline
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
# What every AI test sets: the responder on, a short debounce (never relied on for order).
AI_ENV = {
    "HIKER_AI_BASE_URL": "http://model.test/v1",
    "HIKER_AI_MODEL": "test-model",
    "HIKER_AI_SYSTEM_PROMPT": "You are the shop's assistant.",
    "HIKER_AI_DEBOUNCE_MS": "300",
    "HIKER_AI_TIMEOUT_SECONDS": "20",
    "HIKER_AI_MAX_TOOL_ROUNDS": "1",
    # No idle follow-up in the middle of what a test counts.
    "HIKER_IDLE_TIMEOUT_SECONDS": "600",
}
USAGE = Usage(prompt_tokens=10, completion_tokens=5)


def last_user_text(messages: Sequence[ChatMessage]) -> str:
    return str([m for m in messages if m["role"] == "user"][-1]["content"])


@dataclass
class ScriptedModel:
    """A ``ModelClient``: each call takes the next step of the script of the user it is about
    (matched by ``users``' texts), else answers ``model: <last user text>``. A step is a text,
    an exception to raise, or an ``asyncio.Event`` to wait for before answering."""

    script: dict[str, list[Any]] = field(default_factory=dict)
    requests: list[list[dict[str, Any]]] = field(default_factory=list)
    entered: asyncio.Event = field(default_factory=asyncio.Event)

    async def complete(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> Completion:
        self.requests.append([dict(m) for m in messages])
        self.entered.set()
        last = last_user_text(messages)
        steps = next((s for key, s in self.script.items() if key in last and s), None)
        step = steps.pop(0) if steps else None
        if isinstance(step, Exception):
            raise step
        if isinstance(step, asyncio.Event):
            await step.wait()
            step = None
        if isinstance(step, Completion):
            return step
        return Completion(step if isinstance(step, str) else f"model: {last}", usage=USAGE)

    async def transcribe(self, audio: bytes, *, filename: str, content_type: str) -> Transcript:
        return Transcript("a voice note", USAGE)

    async def close(self) -> None:
        return None

    def calls_about(self, text: str) -> int:
        return sum(1 for messages in self.requests if text in last_user_text(messages))


async def start_conversation(pipeline: Pipeline, model: object, **env: str) -> None:
    """Conversation in this process, asking ``model``; waits until it consumes."""
    settings = load_settings(ConversationSettings, pipeline.env | AI_ENV | env)
    await pipeline.start("conversation", create_conversation(settings, model=model))  # type: ignore[arg-type]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        async with pipeline.session.get(pipeline.url("conversation", "/readyz")) as response:
            if response.status == 200:
                return
        await asyncio.sleep(0.05)
    raise AssertionError("conversation did not become ready")


@dataclass
class ModelServer:
    """The model the child process asks: each request waits for ``release`` when
    ``blocking``, and is answered ``model: <last user text>``."""

    blocking: bool = True
    release: asyncio.Event = field(default_factory=asyncio.Event)
    requests: list[str] = field(default_factory=list)
    entered: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        async def complete(request: web.Request) -> web.Response:
            last = last_user_text((await request.json())["messages"])
            self.requests.append(last)
            self.entered.set()
            if self.blocking:
                await self.release.wait()
            return web.json_response({"text": f"model: {last}"})

        app = web.Application()
        app.router.add_post("/complete", complete)
        return app


class ConversationChild:
    """``tests.integration.ai_conversation`` as a child process, asking ``model_url``."""

    def __init__(self, env: dict[str, str], model_url: str) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            **AI_ENV,
            **env,
            "HIKER_METRICS_PORT": str(self.port),
            "HIKER_TEST_MODEL_URL": model_url,
        }
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.integration.ai_conversation",
            env=self.env, cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
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
        raise AssertionError("conversation did not become ready")

    async def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 20)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
