"""``HttpModelClient`` against what other servers answer: the context-length
errors of vLLM (its fields at the top level, as in vllm-project/vllm's issue threads), llama.cpp's
server (``exceed_context_size_error``, ggml-org/llama.cpp#15780) and llama-cpp-python's server
(OpenAI's shape, from its ``ErrorResponseFormatters``), ``Retry-After`` as a date and OpenAI's
``retry-after-ms``, and answers that are no chat completion."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestServer
from pydantic import SecretStr

from hiker.core.ai_client import HttpModelClient
from hiker.core.ai_model import ContextTooLong, ModelRejected, ModelUnavailable, Usage


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


@pytest.fixture
async def raw() -> AsyncIterator[tuple[BaseTestServer, aiohttp.ClientSession, list[web.Response]]]:
    """A server that answers the next queued response as it is, whatever was asked."""
    queued: list[web.Response] = []

    async def answer(_: web.Request) -> web.Response:
        return queued.pop(0)

    app = web.Application()
    app.router.add_post("/v1/{tail:.*}", answer)
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        yield server, session, queued


def body(status: int, payload: object, **headers: str) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(payload), content_type="application/json", headers=headers
    )


@pytest.mark.parametrize(
    ("status", "payload"),
    [
        # vLLM (its fields at the top level, as its OpenAI server answered until 2025).
        (
            400,
            {
                "object": "error",
                "message": "This model's maximum context length is 4096 tokens. However, you "
                "requested 5000 tokens (4000 in the messages, 1000 in the completion).",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            },
        ),
        # llama.cpp's server, which answered 500 before it answered 400.
        (
            500,
            {
                "error": {
                    "code": 500,
                    "message": "the request exceeds the available context size. try "
                    "increasing the context size or enable context shift",
                    "type": "exceed_context_size_error",
                    "n_prompt_tokens": 1407,
                    "n_ctx": 256,
                }
            },
        ),
        # llama-cpp-python's server, as OpenAI words it.
        (
            400,
            {
                "error": {
                    "message": "This model's maximum context length is 2048 tokens. However, "
                    "you requested 2285 tokens (2285 in the messages, None in the completion). "
                    "Please reduce the length of the messages or completion.",
                    "type": "invalid_request_error",
                    "param": "messages",
                    "code": "context_length_exceeded",
                }
            },
        ),
        # LiteLLM's proxy naming the exception it mapped (wording illustrative; no OpenAI code).
        (
            400,
            {
                "error": {
                    "message": "litellm.ContextWindowExceededError: the prompt is too long",
                    "type": None,
                    "param": None,
                    "code": "400",
                }
            },
        ),
    ],
)
async def test_each_servers_context_length_error_is_recognised(
    raw: tuple[BaseTestServer, aiohttp.ClientSession, list[web.Response]],
    status: int,
    payload: dict[str, Any],
) -> None:
    server, session, queued = raw
    queued.append(body(status, payload))
    client = HttpModelClient(session, base_url=str(server.make_url("/v1")), model="m")
    with pytest.raises(ContextTooLong):
        await client.complete([user("hello")])


async def test_retry_after_as_an_http_date_and_odd_answers(
    raw: tuple[BaseTestServer, aiohttp.ClientSession, list[web.Response]],
) -> None:
    server, session, queued = raw
    later = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    queued.append(body(429, {"error": {"message": "slow down"}}, **{"Retry-After": later}))
    queued.append(body(429, {}, **{"retry-after-ms": "1500", "Retry-After": "9"}))
    queued.append(web.Response(status=200, text="<html>proxy login</html>"))
    queued.append(body(200, {"choices": []}))
    queued.append(body(200, {"choices": [{"message": {"content": "hi"}}]}))
    client = HttpModelClient(session, base_url=str(server.make_url("/v1")), model="m")

    with pytest.raises(ModelUnavailable) as dated:
        await client.complete([user("a")])
    with pytest.raises(ModelUnavailable) as millis:
        await client.complete([user("a")])
    with pytest.raises(ModelUnavailable) as html:
        await client.complete([user("a")])
    with pytest.raises(ModelUnavailable) as empty:
        await client.complete([user("a")])
    bare = await client.complete([user("a")])

    assert dated.value.retry_after is not None
    assert 3000 < dated.value.retry_after <= 3600
    assert millis.value.retry_after == 1.5
    assert (html.value.outcome, empty.value.outcome) == ("server_error", "server_error")
    # No usage, no finish reason, no id: zeros and None, never a crash.
    assert (bare.content, bare.usage, bare.finish_reason) == ("hi", Usage(), None)


async def test_a_key_quoted_back_in_an_error_is_hidden(
    raw: tuple[BaseTestServer, aiohttp.ClientSession, list[web.Response]],
) -> None:
    server, session, queued = raw
    key = "sk-echoed-0123456789"
    queued.append(body(401, {"error": {"type": "auth", "code": f"bad key {key}", "param": key}}))
    client = HttpModelClient(
        session, base_url=str(server.make_url("/v1")), model="m", api_key=SecretStr(key)
    )
    with pytest.raises(ModelRejected) as raised:
        await client.complete([user("hi")])
    assert key not in str(raised.value)
    assert "bad key ***" in str(raised.value)
