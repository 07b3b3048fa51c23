"""What the AI responder asks of a language model, and what can go wrong with the asking.

A ``ModelClient`` speaks one OpenAI-compatible API (``core/ai_client.py`` over HTTP; fakes in
tests). Messages and tools are OpenAI's chat shapes as plain dicts (``{"role": "user",
"content": ...}``, ``{"type": "function", "function": {...}}``), so what a handler builds is what
goes on the wire. Errors say what the caller should do, not what HTTP said: hold and retry
(``ModelUnavailable``), trim the history and retry once (``ContextTooLong``), or give up on this
turn (``ModelRejected``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

ChatMessage = Mapping[str, Any]
ToolSpec = Mapping[str, Any]

# The ``outcome`` label of ``hiker_ai_requests_total``: one per way a call can end.
Outcome = Literal[
    "ok", "timeout", "rate_limited", "server_error", "refused", "context_length", "rejected"
]


@dataclass(frozen=True)
class ToolCall:
    """One function the model asked to call; ``arguments`` is the JSON text it wrote."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Usage:
    """Tokens a call consumed, from the response's ``usage`` (zeros when it carried none)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Completion:
    """The model's answer: text, tool calls, or both (``choices[0].message``)."""

    content: str | None
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None


@dataclass(frozen=True)
class Transcript:
    text: str
    usage: Usage = field(default_factory=Usage)


class ModelError(Exception):
    """A call that did not give an answer. The message never holds the API key or the prompt."""

    outcome: Outcome = "rejected"


class ModelUnavailable(ModelError):
    """Not now: a timeout, 429, 5xx or a refused connection. Hold the turn and retry later,
    no sooner than ``retry_after`` seconds when the server said so (``Retry-After``)."""

    def __init__(self, message: str, *, outcome: Outcome, retry_after: float | None = None):
        super().__init__(message)
        self.outcome = outcome
        self.retry_after = retry_after


class ContextTooLong(ModelError):
    """The messages exceed the model's context window: send fewer turns."""

    outcome: Outcome = "context_length"


class ModelRejected(ModelError):
    """A 4xx other than 408/429 (a wrong key, an unknown model, a malformed request): asking
    again will not help."""

    outcome: Outcome = "rejected"


class ModelClient(Protocol):
    """One OpenAI-compatible API: chat completions with tools, and audio transcriptions."""

    async def complete(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> Completion:
        """``POST {base}/chat/completions`` with the configured model; tools only when given."""
        ...

    async def transcribe(self, audio: bytes, *, filename: str, content_type: str) -> Transcript:
        """``POST {base}/audio/transcriptions`` (multipart) with the transcription model."""
        ...

    async def close(self) -> None: ...
