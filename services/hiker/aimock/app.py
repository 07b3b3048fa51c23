"""OpenAI-compatible stand-in: answers as OpenAI's API shapes them, records what was asked,
plays scripted answers, errors and latency (``script``).

- ``GET /v1/models``: the model list (any model name is answered).
- ``POST /v1/chat/completions``: ``{model, messages, tools?}`` → ``chat.completion`` with
  ``usage`` (the mock's count: four tokens for three words).
- ``POST /v1/audio/transcriptions``: multipart ``file`` and ``model`` → ``{text, usage}``.
- ``POST /_mock/script``: queue answers, transcripts and rules, set a latency for every answer
  (the script's shape); ``DELETE /_mock/script`` forgets them.
- ``GET /_mock/requests``: every ``/v1/`` request, its body included (for a transcription: the
  form's fields and the file's name, type and size); ``DELETE /_mock/requests`` forgets them.

Errors are OpenAI's shape (``{"error": {"message", "type", "param", "code"}}``), with
``Retry-After`` when scripted; ``HIKER_AIMOCK_API_KEY`` makes a wrong bearer token a 401 and
``HIKER_AIMOCK_CONTEXT_TOKENS`` a too-long prompt a 400 ``context_length_exceeded``.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import json
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final, Unpack

from aiohttp import BodyPartReader, web
from pydantic import ValidationError

from hiker.aimock.script import (
    CONTEXT_LENGTH,
    Script,
    Scripted,
    ScriptedTranscript,
    count_tokens,
    default_answer,
    error_body,
    last_user_text,
    load_script,
    prompt_tokens,
)
from hiker.core import kernel
from hiker.core.kernel import OPS_APP, Kit, Parts, Plan, Serve, Service
from hiker.core.settings import AIMockSettings

__all__ = ["OPS_APP", "SERVICE", "STATE", "create_app"]

log = logging.getLogger(__name__)

# OpenAI's limit for an audio upload.
MAX_AUDIO_BYTES: Final = 25 * 1024 * 1024
MODELS: Final = ("hiker-mock", "hiker-mock-transcribe")


@dataclass
class MockState:
    answers: deque[Scripted] = field(default_factory=deque)
    transcripts: deque[ScriptedTranscript] = field(default_factory=deque)
    rules: list[Scripted] = field(default_factory=list)
    rule_words: list[str] = field(default_factory=list)
    latency: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add(self, script: Script) -> None:
        if script.latency is not None:
            self.latency = script.latency
        self.answers.extend(script.answers)
        self.transcripts.extend(script.transcripts)
        self.rules.extend(script.rules)
        self.rule_words.extend(rule.when.lower() for rule in script.rules)

    def clear(self) -> None:
        self.latency = 0.0
        self.answers.clear()
        self.transcripts.clear()
        self.rules.clear()
        self.rule_words.clear()

    def rule_for(self, text: str | None) -> Scripted | None:
        if text is None:
            return None
        lowered = text.lower()
        return next(
            (
                rule
                for rule, word in zip(self.rules, self.rule_words, strict=True)
                if word in lowered
            ),
            None,
        )


STATE = web.AppKey("aimock_state", MockState)


def _error(
    status: int,
    *,
    message: str | None = None,
    type: str | None = None,
    code: str | None = None,
    retry_after: float | None = None,
) -> web.Response:
    response = web.json_response(
        error_body(status, message=message, type=type, code=code), status=status
    )
    if retry_after is not None:
        response.headers["Retry-After"] = f"{retry_after:g}"
    return response


def build(kit: Kit[AIMockSettings]) -> Plan:
    settings = kit.settings
    state = MockState()
    if settings.aimock_script is not None:
        state.add(load_script(settings.aimock_script))
    key = settings.aimock_api_key
    window = settings.aimock_context_tokens

    def authorized(request: web.Request) -> bool:
        if key is None:
            return True
        expected = f"Bearer {key.get_secret_value()}".encode()
        return hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected)

    def record(request: web.Request, body: Any) -> None:
        state.requests.append(
            {"method": request.method, "path": request.path, "body": body, "at": time.time()}
        )

    async def models(request: web.Request) -> web.Response:
        record(request, None)
        if not authorized(request):
            return _error(401)
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "hiker"} for m in MODELS]
        return web.json_response({"object": "list", "data": data})

    async def chat_completions(request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            record(request, None)
            return _error(400, message="We could not parse the JSON body of your request.")
        record(request, body)
        if not authorized(request):
            return _error(401)
        problem = _chat_problem(body)
        if problem is not None:
            return _error(400, message=problem)
        messages, tools = body["messages"], body.get("tools") or []
        prompt = prompt_tokens(messages, tools)
        if window is not None and prompt > window:
            return _error(400, code=CONTEXT_LENGTH)
        answer = (
            (state.answers.popleft() if state.answers else None)
            or state.rule_for(last_user_text(messages))
            or default_answer(messages, tools)
        )
        if delay := answer.delay or state.latency:
            await asyncio.sleep(delay)
        if answer.disconnect:
            return _drop(request)
        if answer.status >= 400:
            return _error(
                answer.status,
                message=answer.message,
                type=answer.type,
                code=answer.code,
                retry_after=answer.retry_after,
            )
        return web.json_response(_completion(answer, body["model"], prompt, next(state.ids)))

    async def transcriptions(request: web.Request) -> web.Response:
        try:
            fields, audio = await _read_form(request)
        except ValueError as exc:
            record(request, None)
            return _error(400, message=str(exc))
        except _TooLarge:
            record(request, None)
            return _error(413, message="Maximum content size limit (26214400) exceeded.")
        record(request, fields)
        if not authorized(request):
            return _error(401)
        if audio is None or not fields.get("model"):
            return _error(400, message="file and model are required")
        scripted = state.transcripts.popleft() if state.transcripts else None
        transcript = scripted or ScriptedTranscript(
            text="Hello! This voice note was transcribed by hiker aimock."
        )
        if delay := transcript.delay or state.latency:
            await asyncio.sleep(delay)
        if transcript.status >= 400:
            return _error(
                transcript.status,
                message=transcript.message,
                type=transcript.type,
                code=transcript.code,
                retry_after=transcript.retry_after,
            )
        spoken = max(1, math.ceil(len(audio) / 1024))
        said = count_tokens(transcript.text)
        usage = {
            "type": "tokens",
            "input_tokens": spoken,
            "output_tokens": said,
            "total_tokens": spoken + said,
        }
        return web.json_response({"text": transcript.text, "usage": usage})

    async def script(request: web.Request) -> web.Response:
        try:
            added = Script.model_validate(await request.json())
        except (ValueError, ValidationError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        state.add(added)
        return web.json_response(
            {
                "answers": len(state.answers),
                "transcripts": len(state.transcripts),
                "rules": len(state.rules),
                "latency": state.latency,
            }
        )

    async def clear_script(_: web.Request) -> web.Response:
        state.clear()
        return web.json_response({"cleared": True})

    async def list_requests(_: web.Request) -> web.Response:
        return web.json_response(state.requests)

    async def clear_requests(_: web.Request) -> web.Response:
        state.requests.clear()
        return web.json_response({"cleared": True})

    app = web.Application()
    app[STATE] = state
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/audio/transcriptions", transcriptions)
    app.router.add_post("/_mock/script", script)
    app.router.add_delete("/_mock/script", clear_script)
    app.router.add_get("/_mock/requests", list_requests)
    app.router.add_delete("/_mock/requests", clear_requests)

    async def always_ready() -> bool:
        return True

    return Plan(
        topology=None,
        serves=Serve(app, settings.aimock_host, settings.aimock_port),
        readiness={"self": always_ready},
    )


SERVICE = Service("aimock", AIMockSettings, build)


def create_app(settings: AIMockSettings, **parts: Unpack[Parts]) -> web.Application:
    """The mock's OpenAI endpoints; its operations app (metrics, health) at ``app[OPS_APP]``."""
    return kernel.create_app(SERVICE, settings, **parts)


def _chat_problem(body: Any) -> str | None:
    """Why OpenAI would refuse this body with a 400, or None."""
    if not isinstance(body, dict):
        return "The body must be a JSON object."
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "you must provide a model parameter"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array"
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        return "every message must be an object with a 'role'"
    tools = body.get("tools")
    if tools is not None and not (
        isinstance(tools, list) and all(isinstance(t, dict) for t in tools)
    ):
        return "'tools' must be an array of objects"
    return None


def _completion(answer: Scripted, model: str, prompt: int, number: int) -> dict[str, Any]:
    arguments = [
        call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)
        for call in answer.tool_calls
    ]
    calls = [
        {
            "id": call.id or f"call_mock_{number}_{index}",
            "type": "function",
            "function": {"name": call.name, "arguments": arguments[index]},
        }
        for index, call in enumerate(answer.tool_calls)
    ]
    message: dict[str, Any] = {"role": "assistant", "content": answer.content}
    if calls:
        message["tool_calls"] = calls
    written = count_tokens(" ".join([answer.content or "", *arguments]))
    prompt = answer.prompt_tokens if answer.prompt_tokens is not None else prompt
    written = answer.completion_tokens if answer.completion_tokens is not None else written
    return {
        "id": f"chatcmpl-mock{number:08d}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": answer.finish_reason or ("tool_calls" if calls else "stop"),
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": written,
            "total_tokens": prompt + written,
        },
    }


def _drop(request: web.Request) -> web.Response:
    """Close the connection unanswered: the client sees it reset, as when a server dies."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=500)


class _TooLarge(Exception):
    pass


async def _read_form(request: web.Request) -> tuple[dict[str, Any], bytes | None]:
    """A transcription's form: its text fields, the file described (not its bytes), the bytes."""
    if not request.content_type.startswith("multipart/"):
        raise ValueError("the body must be multipart/form-data")
    reader = await request.multipart()
    fields: dict[str, Any] = {}
    audio: bytes | None = None
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader) or part.name is None:
            continue
        if part.name == "file":
            data = bytearray()
            while chunk := await part.read_chunk():
                data.extend(chunk)
                if len(data) > MAX_AUDIO_BYTES:
                    raise _TooLarge
            audio = bytes(data)
            fields["file"] = {
                "filename": part.filename,
                "content_type": part.headers.get("Content-Type"),
                "size": len(audio),
            }
        else:
            fields[part.name] = await part.text()
    return fields, audio
