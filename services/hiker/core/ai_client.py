"""``HttpModelClient``: the ``ModelClient`` of any OpenAI-compatible API, over aiohttp.

Shapes are OpenAI's (its API reference): ``POST {base}/chat/completions`` takes ``{model,
messages, tools?}`` and answers ``choices[0].message`` (``content``, ``tool_calls[].id /
function.name / function.arguments``), ``choices[0].finish_reason`` and ``usage.prompt_tokens /
completion_tokens``; ``POST {base}/audio/transcriptions`` takes a multipart ``file`` and
``model`` and answers ``{text, usage?}``, its usage either ``{type: "tokens", input_tokens,
output_tokens}`` or ``{type: "duration", seconds}`` (no tokens).

What went wrong is told by what to do about it (``core.ai_model``): a timeout, 408, 429, 5xx or a
connection refused or reset is ``ModelUnavailable``; a context-length error is
``ContextTooLong``, whoever reports it (OpenAI's ``code: context_length_exceeded``, which
llama-cpp-python's server copies; vLLM's 400 "maximum context length"; llama.cpp's ``type:
exceed_context_size_error``, once answered with 500; LiteLLM's ContextWindowExceededError); any
other 4xx is ``ModelRejected``.

The key travels in ``Authorization: Bearer`` only. An error's message names the status and the
server's error ``type`` / ``code``, never the server's own message (servers quote the request
in it, a prompt included) and never the key.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Final

import aiohttp
from pydantic import SecretStr

from hiker.core.ai_model import (
    ChatMessage,
    Completion,
    ContextTooLong,
    ModelError,
    ModelRejected,
    ModelUnavailable,
    Outcome,
    ToolCall,
    ToolSpec,
    Transcript,
    Usage,
)
from hiker.core.observability import redact
from hiker.core.settings.ai import AISettings

# Called once per call, whatever its outcome: the engine counts it (``AIMetrics``).
OnCall = Callable[[Outcome, float, Usage], None]

# How servers word a context-length error when no code says it (vLLM, LiteLLM's
# ContextWindowExceededError, llama.cpp's message).
_CONTEXT_WORDS: Final = re.compile(
    r"context[ _-]?(length|window|size)|maximum context|too many tokens|prompt is too long",
    re.IGNORECASE,
)
_CONTEXT_CODES: Final = frozenset({"context_length_exceeded", "exceed_context_size_error"})
# Short fields of an error body worth quoting; anything longer is cut (a server may put text of
# the request in them).
_FIELD_MAX: Final = 60


@dataclass
class _Call:
    usage: Usage = field(default_factory=Usage)


class HttpModelClient:
    """One OpenAI-compatible API, called with a session the caller owns (and closes)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        model: str,
        api_key: SecretStr | None = None,
        timeout_seconds: float = 60.0,
        transcribe_model: str | None = None,
        on_call: OnCall | None = None,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._model = model
        self._key = api_key
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._timeout_seconds = timeout_seconds
        self._transcribe_model = transcribe_model
        self._on_call = on_call

    @classmethod
    def from_settings(
        cls,
        session: aiohttp.ClientSession,
        settings: AISettings,
        *,
        on_call: OnCall | None = None,
    ) -> HttpModelClient:
        """The client ``HIKER_AI_*`` describe; ValueError when the responder is off."""
        if settings.ai_base_url is None or settings.ai_model is None:
            raise ValueError("HIKER_AI_BASE_URL and HIKER_AI_MODEL are not set")
        return cls(
            session,
            base_url=settings.ai_base_url,
            model=settings.ai_model,
            api_key=settings.ai_api_key,
            timeout_seconds=settings.ai_timeout_seconds,
            transcribe_model=settings.ai_transcribe_model,
            on_call=on_call,
        )

    def __repr__(self) -> str:
        return f"HttpModelClient(base_url={redact(self._base)!r}, model={self._model!r})"

    async def complete(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> Completion:
        body: dict[str, Any] = {"model": self._model, "messages": [dict(m) for m in messages]}
        if tools:
            body["tools"] = [dict(t) for t in tools]
        with self._call() as call:
            completion = _completion(await self._post("/chat/completions", json=body))
            call.usage = completion.usage
            return completion

    async def transcribe(self, audio: bytes, *, filename: str, content_type: str) -> Transcript:
        if self._transcribe_model is None:
            raise ModelRejected("no transcription model: HIKER_AI_TRANSCRIBE_MODEL is not set")
        form = aiohttp.FormData()
        form.add_field("file", audio, filename=filename, content_type=content_type)
        form.add_field("model", self._transcribe_model)
        with self._call() as call:
            transcript = _transcript(await self._post("/audio/transcriptions", data=form))
            call.usage = transcript.usage
            return transcript

    async def close(self) -> None:
        """Nothing to release: the session is its owner's."""

    @contextlib.contextmanager
    def _call(self) -> Iterator[_Call]:
        """Time one call and tell ``on_call`` how it ended, once, whatever happens."""
        call = _Call()
        started = time.monotonic()
        outcome: Outcome = "ok"
        try:
            yield call
        except ModelError as exc:
            outcome = exc.outcome
            raise
        except asyncio.CancelledError:
            # Cut short by its caller's own deadline: for the model, as good as a timeout.
            outcome = "timeout"
            raise
        except Exception:
            outcome = "server_error"
            raise
        finally:
            if self._on_call is not None:
                self._on_call(outcome, time.monotonic() - started, call.usage)

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._key is not None and self._key.get_secret_value():
            headers["Authorization"] = f"Bearer {self._key.get_secret_value()}"
        return headers

    async def _post(self, path: str, **payload: Any) -> dict[str, Any]:
        url = self._base + path
        where = f"{path} at {redact(self._base)}"
        try:
            async with self._session.post(
                url, headers=self._headers(), timeout=self._timeout, **payload
            ) as response:
                status = response.status
                retry_after = _retry_after(response.headers)
                raw = await response.read()
        except TimeoutError as exc:
            raise ModelUnavailable(
                f"no answer from {where} within {self._timeout_seconds:g}s", outcome="timeout"
            ) from exc
        except aiohttp.ClientError as exc:
            # Refused, reset, closed mid-answer: the server is not there now.
            raise ModelUnavailable(
                f"no connection to {where} ({type(exc).__name__})", outcome="refused"
            ) from None
        body = _json_object(raw)
        if 200 <= status < 300:
            if body is None:
                raise ModelUnavailable(
                    f"{where} answered HTTP {status} with no JSON object", outcome="server_error"
                )
            return body
        key = self._key.get_secret_value() if self._key is not None else ""
        raise _error(status, body, retry_after, where, hide=key)


def _error(
    status: int,
    body: dict[str, Any] | None,
    retry_after: float | None,
    where: str,
    *,
    hide: str = "",
) -> ModelError:
    detail = _error_detail(body)
    if len(hide) >= 4:
        # A server quoting the key back in its error's code or type would put it in a log.
        detail = detail.replace(hide, "***")
    said = f"{where} answered HTTP {status}{detail}"
    if status == 408:
        return ModelUnavailable(said, outcome="timeout", retry_after=retry_after)
    if status == 429:
        return ModelUnavailable(said, outcome="rate_limited", retry_after=retry_after)
    # Before 5xx: llama.cpp's server answered a too-long prompt with 500 until 2025.
    if status in (400, 413, 422, 500) and _is_context_length(body):
        return ContextTooLong(said)
    if status >= 500:
        return ModelUnavailable(said, outcome="server_error", retry_after=retry_after)
    return ModelRejected(said)


def _error_fields(body: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The error object: OpenAI's ``{"error": {...}}``; older vLLM's fields at the top."""
    if body is None:
        return {}
    error = body.get("error")
    if isinstance(error, dict):
        return error
    return body


def _is_context_length(body: Mapping[str, Any] | None) -> bool:
    fields = _error_fields(body)
    if fields.get("code") in _CONTEXT_CODES or fields.get("type") in _CONTEXT_CODES:
        return True
    message = fields.get("message")
    if not isinstance(message, str) and isinstance(body, dict):
        message = body.get("error") if isinstance(body.get("error"), str) else body.get("detail")
    return isinstance(message, str) and bool(_CONTEXT_WORDS.search(message))


def _error_detail(body: Mapping[str, Any] | None) -> str:
    fields = _error_fields(body)
    parts = [
        f"{name} {str(value)[:_FIELD_MAX]}"
        for name in ("type", "code", "param")
        if (value := fields.get(name)) not in (None, "")
    ]
    return f" ({', '.join(parts)})" if parts else ""


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` (OpenAI's) or ``Retry-After`` (seconds or an
    HTTP date); None when neither says it."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _int(value: object) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def _completion(body: dict[str, Any]) -> Completion:
    try:
        choice = body["choices"][0]
        message = choice["message"]
        calls = tuple(
            _tool_call(index, call) for index, call in enumerate(message.get("tool_calls") or [])
        )
        content = message.get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise ModelUnavailable(
            "the model's answer has no choices[0].message", outcome="server_error"
        ) from None
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    assert isinstance(usage, dict)
    finish = choice.get("finish_reason")
    return Completion(
        content=content if isinstance(content, str) else None,
        tool_calls=calls,
        usage=Usage(_int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))),
        finish_reason=finish if isinstance(finish, str) else None,
    )


def _tool_call(index: int, call: Mapping[str, Any]) -> ToolCall:
    function = call["function"]
    arguments = function.get("arguments")
    # OpenAI sends the arguments as JSON text; a few servers send the object itself.
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments if arguments is not None else {})
    call_id = call.get("id")
    return ToolCall(
        id=call_id if isinstance(call_id, str) and call_id else f"call_{index}",
        name=str(function["name"]),
        arguments=arguments,
    )


def _transcript(body: dict[str, Any]) -> Transcript:
    text = body.get("text")
    if not isinstance(text, str):
        raise ModelUnavailable("the transcription has no text", outcome="server_error")
    usage = body.get("usage")
    if isinstance(usage, dict) and usage.get("type", "tokens") == "tokens":
        return Transcript(
            text, Usage(_int(usage.get("input_tokens")), _int(usage.get("output_tokens")))
        )
    return Transcript(text)
