"""The model conversation asks, and the one place its calls become metrics.

``HttpModelClient`` (``core/ai_client.py``) reports every call through its ``on_call(outcome,
seconds, usage)`` hook; a client handed in instead (tests, a custom one) is wrapped by
``Metered``, which reports the same way. Either way ``record_calls`` is what counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import aiohttp

from hiker.conversation.ai.metrics import AIMetrics
from hiker.core.ai_client import HttpModelClient
from hiker.core.ai_model import (
    ChatMessage,
    Completion,
    ModelClient,
    ModelError,
    Outcome,
    ToolSpec,
    Transcript,
    Usage,
)
from hiker.core.settings.ai import AISettings

OnCall = Callable[[Outcome, float, Usage], None]


def record_calls(metrics: AIMetrics) -> OnCall:
    """What one call to the model adds to the metrics: its outcome, time and tokens."""

    def on_call(outcome: Outcome, seconds: float, usage: Usage) -> None:
        metrics.requests.labels(outcome).inc()
        metrics.latency.observe(seconds)
        if usage.prompt_tokens:
            metrics.tokens.labels("prompt").inc(usage.prompt_tokens)
        if usage.completion_tokens:
            metrics.tokens.labels("completion").inc(usage.completion_tokens)

    return on_call


class Metered:
    """A ``ModelClient`` whose calls are reported to ``on_call``."""

    def __init__(self, client: ModelClient, on_call: OnCall) -> None:
        self._client = client
        self._on_call = on_call

    async def complete(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> Completion:
        began = time.monotonic()
        try:
            completion = await self._client.complete(messages, tools)
        except ModelError as exc:
            self._on_call(exc.outcome, time.monotonic() - began, Usage())
            raise
        self._on_call("ok", time.monotonic() - began, completion.usage)
        return completion

    async def transcribe(self, audio: bytes, *, filename: str, content_type: str) -> Transcript:
        began = time.monotonic()
        try:
            transcript = await self._client.transcribe(
                audio, filename=filename, content_type=content_type
            )
        except ModelError as exc:
            self._on_call(exc.outcome, time.monotonic() - began, Usage())
            raise
        self._on_call("ok", time.monotonic() - began, transcript.usage)
        return transcript

    async def close(self) -> None:
        await self._client.close()


def http_model_client(
    settings: AISettings, on_call: OnCall, session: aiohttp.ClientSession
) -> ModelClient:
    """The OpenAI-compatible client of ``HIKER_AI_BASE_URL`` (``core/ai_client.py``)."""
    return HttpModelClient.from_settings(session, settings, on_call=on_call)
