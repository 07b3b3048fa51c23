"""``HttpModelClient`` against ``hiker aimock`` over real HTTP: answers, tool calls, usage and
transcripts as the engine gets them, and every way a call fails mapped to what to do about it.
Provider-specific error bodies the mock does not speak (vLLM, llama.cpp) come from a raw server
that answers exactly the bytes those servers send."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import BaseTestServer, TestServer
from pydantic import SecretStr

from hiker.aimock.app import create_app
from hiker.core.ai_client import HttpModelClient
from hiker.core.ai_model import (
    ContextTooLong,
    ModelClient,
    ModelRejected,
    ModelUnavailable,
    Outcome,
    Usage,
)
from hiker.core.settings import AIMockSettings, AISettings, load_settings
from tests.support import free_port

KEY = "sk-test-4f0c2a9d7e1b"
SECRET_PROMPT = "my card number is 4111 1111 1111 1111"
HANDOFF = {
    "type": "function",
    "function": {
        "name": "handoff",
        "description": "Hand the conversation to a person.",
        "parameters": {
            "type": "object",
            "properties": {"reason": {"type": "string"}},
            "required": ["reason"],
        },
    },
}


@dataclass
class Calls:
    seen: list[tuple[Outcome, float, Usage]] = field(default_factory=list)

    def __call__(self, outcome: Outcome, seconds: float, usage: Usage) -> None:
        self.seen.append((outcome, seconds, usage))

    @property
    def outcomes(self) -> list[Outcome]:
        return [outcome for outcome, _, _ in self.seen]


@dataclass
class Mock:
    server: BaseTestServer
    session: aiohttp.ClientSession
    calls: Calls

    @property
    def base(self) -> str:
        return str(self.server.make_url("/v1"))

    def client(self, **options: Any) -> HttpModelClient:
        settings: dict[str, Any] = {
            "base_url": self.base,
            "model": "hiker-mock",
            "api_key": SecretStr(KEY),
            "transcribe_model": "hiker-mock-transcribe",
            "on_call": self.calls,
        } | options
        return HttpModelClient(self.session, **settings)

    async def script(self, **script: Any) -> None:
        async with self.session.post(self.server.make_url("/_mock/script"), json=script) as r:
            assert r.status == 200, await r.text()

    async def requests(self) -> list[dict[str, Any]]:
        async with self.session.get(self.server.make_url("/_mock/requests")) as response:
            result: list[dict[str, Any]] = await response.json()
            return result


@pytest.fixture
async def mock() -> AsyncIterator[Mock]:
    settings = load_settings(
        AIMockSettings, {"HIKER_AIMOCK_API_KEY": KEY, "HIKER_AIMOCK_CONTEXT_TOKENS": "200"}
    )
    async with TestServer(create_app(settings)) as server, aiohttp.ClientSession() as session:
        yield Mock(server, session, Calls())


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


async def test_an_answer_comes_back_with_its_usage_and_the_history_goes_in_order(
    mock: Mock,
) -> None:
    history = [
        {"role": "system", "content": "You are a shop assistant."},
        user("hi"),
        {"role": "assistant", "content": "Hello! How can I help?"},
        user("what do you sell?"),
    ]
    # What the engine holds: mypy checks that the client is a ModelClient.
    client: ModelClient = mock.client()
    completion = await client.complete(history)

    assert completion.content is not None
    assert "what do you sell?" in completion.content
    assert completion.tool_calls == ()
    assert completion.finish_reason == "stop"
    # The mock counts four tokens for three words, prompt and answer apart.
    words = sum(len(str(m["content"]).split()) for m in history)
    assert completion.usage.prompt_tokens == -(-words * 4 // 3)
    assert completion.usage.completion_tokens > 0
    (asked,) = await mock.requests()
    assert asked["path"] == "/v1/chat/completions"
    assert asked["body"] == {"model": "hiker-mock", "messages": history}
    assert mock.calls.outcomes == ["ok"]
    assert mock.calls.seen[0][2] == completion.usage


async def test_a_tool_call_is_parsed_with_its_id_name_and_json_arguments(mock: Mock) -> None:
    completion = await mock.client().complete([user("can I talk to a person?")], [HANDOFF])

    (call,) = completion.tool_calls
    assert call.name == "handoff"
    assert call.id
    assert json.loads(call.arguments) == {"reason": "the user asked for a person"}
    assert completion.finish_reason == "tool_calls"
    (asked,) = await mock.requests()
    assert asked["body"]["tools"] == [HANDOFF]


async def test_scripted_text_and_tool_calls_come_back_as_scripted(mock: Mock) -> None:
    await mock.script(
        answers=[
            {"content": "first", "prompt_tokens": 7, "completion_tokens": 3},
            {
                "content": "let me check",
                "tool_calls": [
                    {"id": "call_1", "name": "remind", "arguments": {"after_minutes": 5}},
                    {"id": "call_2", "name": "send_buttons", "arguments": "{not json"},
                ],
            },
        ]
    )
    client = mock.client()
    first = await client.complete([user("a")])
    second = await client.complete([user("b")])

    assert (first.content, first.usage) == ("first", Usage(7, 3))
    assert second.content == "let me check"
    assert [(c.id, c.name, c.arguments) for c in second.tool_calls] == [
        ("call_1", "remind", '{"after_minutes": 5}'),
        ("call_2", "send_buttons", "{not json"),
    ]


@pytest.mark.parametrize(
    ("scripted", "outcome", "retry_after"),
    [
        ({"status": 429, "retry_after": 2}, "rate_limited", 2.0),
        ({"status": 429}, "rate_limited", None),
        ({"status": 500}, "server_error", None),
        ({"status": 503, "retry_after": 7}, "server_error", 7.0),
        ({"status": 502}, "server_error", None),
        ({"status": 408}, "timeout", None),
    ],
)
async def test_not_now_answers_hold_the_turn(
    mock: Mock, scripted: dict[str, Any], outcome: str, retry_after: float | None
) -> None:
    await mock.script(answers=[scripted])
    with pytest.raises(ModelUnavailable) as raised:
        await mock.client().complete([user(SECRET_PROMPT)])

    assert raised.value.outcome == outcome
    assert raised.value.retry_after == retry_after
    assert f"HTTP {scripted['status']}" in str(raised.value)
    assert mock.calls.outcomes == [outcome]
    # Served once the model is back.
    assert (await mock.client().complete([user("again")])).content


async def test_a_slow_model_times_out(mock: Mock) -> None:
    await mock.script(answers=[{"delay": 5, "content": "too late"}])
    with pytest.raises(ModelUnavailable) as raised:
        await mock.client(timeout_seconds=0.2).complete([user("hello")])
    assert raised.value.outcome == "timeout"
    assert mock.calls.outcomes == ["timeout"]


async def test_a_model_slow_for_everyone_times_out_until_the_latency_is_cleared(
    mock: Mock,
) -> None:
    await mock.script(latency=5)
    with pytest.raises(ModelUnavailable) as raised:
        await mock.client(timeout_seconds=0.2).complete([user("hello")])
    async with mock.session.delete(mock.server.make_url("/_mock/script")) as response:
        assert response.status == 200
    assert (await mock.client(timeout_seconds=30).complete([user("hello")])).content
    assert raised.value.outcome == "timeout"


async def test_a_connection_dropped_mid_call_or_refused_is_refused(mock: Mock) -> None:
    await mock.script(answers=[{"disconnect": True}])
    with pytest.raises(ModelUnavailable) as dropped:
        await mock.client().complete([user("hello")])
    closed = HttpModelClient(
        mock.session, base_url=f"http://127.0.0.1:{free_port()}/v1", model="m", on_call=mock.calls
    )
    with pytest.raises(ModelUnavailable) as refused:
        await closed.complete([user("hello")])

    assert (dropped.value.outcome, refused.value.outcome) == ("refused", "refused")
    assert mock.calls.outcomes == ["refused", "refused"]


async def test_a_context_length_error_asks_for_fewer_turns(mock: Mock) -> None:
    # The mock's window is 200 of its tokens; then a scripted OpenAI code.
    with pytest.raises(ContextTooLong):
        await mock.client().complete([user("word " * 200)])
    await mock.script(answers=[{"status": 400, "code": "context_length_exceeded"}])
    with pytest.raises(ContextTooLong) as raised:
        await mock.client().complete([user("short")])
    assert raised.value.outcome == "context_length"
    assert mock.calls.outcomes == ["context_length", "context_length"]


async def test_other_refusals_give_up_on_the_turn_and_never_show_key_or_prompt(
    mock: Mock,
) -> None:
    await mock.script(
        answers=[{"status": 404, "message": f"unknown model; you said {SECRET_PROMPT}"}]
    )
    with pytest.raises(ModelRejected) as not_found:
        await mock.client().complete([user(SECRET_PROMPT)])
    with pytest.raises(ModelRejected) as wrong_key:
        await mock.client(api_key=SecretStr("sk-wrong-key-123456")).complete([user(SECRET_PROMPT)])

    assert "HTTP 404" in str(not_found.value)
    assert "model_not_found" in str(not_found.value)
    assert "HTTP 401" in str(wrong_key.value)
    assert "invalid_api_key" in str(wrong_key.value)
    for error in (not_found.value, wrong_key.value):
        assert SECRET_PROMPT not in str(error)
        assert "4111" not in str(error)
        assert KEY not in str(error)
        assert "sk-wrong-key" not in str(error)
        assert KEY not in repr(error)
    assert mock.calls.outcomes == ["rejected", "rejected"]


async def test_the_key_goes_as_a_bearer_token_and_never_into_a_repr(mock: Mock) -> None:
    client = mock.client(base_url="http://user:hunter2@127.0.0.1:1/v1")
    assert KEY not in repr(client)
    assert "hunter2" not in repr(client)
    # The mock checks ``Authorization: Bearer <key>``: served with the key, refused without.
    assert (await mock.client().complete([user("hi")])).content
    with pytest.raises(ModelRejected, match="HTTP 401"):
        await mock.client(api_key=None).complete([user("hi")])


async def test_a_voice_note_is_transcribed_by_the_transcription_model(mock: Mock) -> None:
    await mock.script(transcripts=[{"text": "book a table for two"}])
    client = mock.client()
    scripted = await client.transcribe(
        b"\x00" * 3000, filename="note.ogg", content_type="audio/ogg"
    )
    default = await client.transcribe(b"OggS", filename="again.ogg", content_type="audio/ogg")

    assert scripted.text == "book a table for two"
    assert scripted.usage == Usage(prompt_tokens=3, completion_tokens=7)
    assert default.text
    first, _ = await mock.requests()
    assert first["path"] == "/v1/audio/transcriptions"
    assert first["body"] == {
        "file": {"filename": "note.ogg", "content_type": "audio/ogg", "size": 3000},
        "model": "hiker-mock-transcribe",
    }
    assert mock.calls.outcomes == ["ok", "ok"]


async def test_transcription_failures_map_like_completions(mock: Mock) -> None:
    await mock.script(transcripts=[{"status": 429, "retry_after": 3}, {"status": 400}])
    client = mock.client()
    with pytest.raises(ModelUnavailable) as limited:
        await client.transcribe(b"OggS", filename="a.ogg", content_type="audio/ogg")
    with pytest.raises(ModelRejected):
        await client.transcribe(b"OggS", filename="a.ogg", content_type="audio/ogg")
    with pytest.raises(ModelRejected, match="HIKER_AI_TRANSCRIBE_MODEL"):
        await mock.client(transcribe_model=None).transcribe(
            b"OggS", filename="a.ogg", content_type="audio/ogg"
        )

    assert (limited.value.outcome, limited.value.retry_after) == ("rate_limited", 3.0)
    assert mock.calls.outcomes == ["rate_limited", "rejected"]


async def test_the_client_is_built_from_the_ai_settings(mock: Mock) -> None:
    settings = load_settings(
        AISettings,
        {
            "HIKER_AI_BASE_URL": mock.base,
            "HIKER_AI_MODEL": "hiker-mock",
            "HIKER_AI_API_KEY": KEY,
            "HIKER_AI_TIMEOUT_SECONDS": "5",
        },
    )
    client = HttpModelClient.from_settings(mock.session, settings)
    assert (await client.complete([user("hi")])).content
    with pytest.raises(ValueError, match="HIKER_AI_BASE_URL"):
        HttpModelClient.from_settings(mock.session, load_settings(AISettings, {}))
