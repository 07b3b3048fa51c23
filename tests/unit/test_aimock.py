"""``hiker aimock`` answers as OpenAI's API does: a deterministic reply without a script, tool
calls a newcomer can see work, scripts from a file or the control endpoints, OpenAI's error
shape, and a record of every request with its body."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import BaseTestServer, TestServer

from hiker.aimock.app import create_app
from hiker.core.settings import AIMockSettings, ConfigError, load_settings

BUTTONS = {
    "type": "function",
    "function": {
        "name": "send_buttons",
        "parameters": {
            "type": "object",
            "properties": {
                "body": {"type": "string"},
                "options": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"id": {"type": "string"}, "title": {"type": "string"}},
                    },
                },
            },
        },
    },
}
HANDOFF = {"type": "function", "function": {"name": "handoff", "parameters": {}}}


async def serve(
    env: dict[str, str] | None = None,
) -> tuple[BaseTestServer, aiohttp.ClientSession]:
    server = TestServer(create_app(load_settings(AIMockSettings, env or {})))
    await server.start_server()
    return server, aiohttp.ClientSession()


@pytest.fixture
async def mock() -> AsyncIterator[tuple[BaseTestServer, aiohttp.ClientSession]]:
    server, session = await serve()
    yield server, session
    await session.close()
    await server.close()


async def chat(
    mock: tuple[BaseTestServer, aiohttp.ClientSession], text: str, tools: list[Any] | None = None
) -> tuple[int, dict[str, Any]]:
    server, session = mock
    body: dict[str, Any] = {"model": "any-model", "messages": [{"role": "user", "content": text}]}
    if tools is not None:
        body["tools"] = tools
    async with session.post(server.make_url("/v1/chat/completions"), json=body) as response:
        return response.status, await response.json()


async def test_without_a_script_the_answer_is_friendly_deterministic_and_counted(
    mock: tuple[BaseTestServer, aiohttp.ClientSession],
) -> None:
    status, first = await chat(mock, "what can you do?")
    _, again = await chat(mock, "what can you do?")

    assert status == 200
    message = first["choices"][0]["message"]
    assert message["role"] == "assistant"
    assert "what can you do?" in message["content"]
    assert message["content"] == again["choices"][0]["message"]["content"]
    assert first["object"] == "chat.completion"
    assert first["model"] == "any-model"
    # Four tokens for three words: "what can you do?" is four words.
    assert first["usage"]["prompt_tokens"] == 6
    assert first["usage"]["total_tokens"] == (
        first["usage"]["prompt_tokens"] + first["usage"]["completion_tokens"]
    )


async def test_obvious_asks_call_the_offered_tools(
    mock: tuple[BaseTestServer, aiohttp.ClientSession],
) -> None:
    _, person = await chat(mock, "Can I speak to a human please", [HANDOFF, BUTTONS])
    _, options = await chat(mock, "what are my options?", [HANDOFF, BUTTONS])
    _, no_tools = await chat(mock, "Can I speak to a human please")

    (handoff,) = person["choices"][0]["message"]["tool_calls"]
    assert handoff["type"] == "function"
    assert handoff["function"]["name"] == "handoff"
    assert person["choices"][0]["finish_reason"] == "tool_calls"
    (buttons,) = options["choices"][0]["message"]["tool_calls"]
    assert buttons["function"]["name"] == "send_buttons"
    assert '"title": "Yes"' in buttons["function"]["arguments"]
    assert "tool_calls" not in no_tools["choices"][0]["message"]


async def test_after_a_tool_result_the_mock_answers_in_text(
    mock: tuple[BaseTestServer, aiohttp.ClientSession],
) -> None:
    server, session = mock
    messages = [
        {"role": "user", "content": "a person please"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "handoff", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "handed off"},
    ]
    body = {"model": "m", "messages": messages, "tools": [HANDOFF]}
    async with session.post(server.make_url("/v1/chat/completions"), json=body) as response:
        answer = await response.json()
    assert "a person" in answer["choices"][0]["message"]["content"]
    assert "tool_calls" not in answer["choices"][0]["message"]


async def test_offered_choices_speak_for_themselves_after_the_tool_ran(
    mock: tuple[BaseTestServer, aiohttp.ClientSession],
) -> None:
    server, session = mock
    call = {"id": "c1", "type": "function", "function": {"name": "send_buttons", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "what are my options?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "sent"},
    ]
    body = {"model": "m", "messages": messages, "tools": [BUTTONS]}
    async with session.post(server.make_url("/v1/chat/completions"), json=body) as response:
        answer = await response.json()
    assert not answer["choices"][0]["message"]["content"]  # blank: only the buttons go out


async def test_a_script_file_plays_answers_in_order_then_rules_then_the_default(
    tmp_path: Path,
) -> None:
    script = tmp_path / "script.yaml"
    script.write_text(
        "answers:\n"
        "  - content: first\n"
        "  - status: 503\n"
        "    retry_after: 4\n"
        "rules:\n"
        "  - when: opening hours\n"
        "    content: We are open 9 to 5.\n"
    )
    server, session = await serve({"HIKER_AIMOCK_SCRIPT": str(script)})
    try:
        mock = (server, session)
        results = [await chat(mock, "what are your OPENING HOURS?") for _ in range(4)]
        async with session.get(server.make_url("/_mock/requests")) as response:
            recorded = await response.json()
    finally:
        await session.close()
        await server.close()

    assert results[0][0] == 200
    assert results[0][1]["choices"][0]["message"]["content"] == "first"
    assert results[1][0] == 503
    assert results[1][1]["error"]["type"] == "server_error"
    # Rules are never used up.
    for _, answer in results[2:]:
        assert answer["choices"][0]["message"]["content"] == "We are open 9 to 5."
    assert len(recorded) == 4
    assert recorded[0]["body"]["messages"][0]["content"] == "what are your OPENING HOURS?"


async def test_an_invalid_script_file_refuses_to_start_naming_the_variable(
    tmp_path: Path,
) -> None:
    script = tmp_path / "bad.yaml"
    script.write_text("answers:\n  - status: 99\n")
    with pytest.raises(ConfigError, match="HIKER_AIMOCK_SCRIPT"):
        create_app(load_settings(AIMockSettings, {"HIKER_AIMOCK_SCRIPT": str(script)}))
    with pytest.raises(ConfigError, match="HIKER_AIMOCK_SCRIPT"):
        load_settings(AIMockSettings, {"HIKER_AIMOCK_SCRIPT": str(tmp_path / "missing.yaml")})


async def test_errors_have_openais_shape_and_retry_after(
    mock: tuple[BaseTestServer, aiohttp.ClientSession],
) -> None:
    server, session = mock
    script = {"answers": [{"status": 429, "retry_after": 2.5}]}
    async with session.post(server.make_url("/_mock/script"), json=script) as response:
        assert await response.json() == {
            "answers": 1,
            "transcripts": 0,
            "rules": 0,
            "latency": 0.0,
        }
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    async with session.post(server.make_url("/v1/chat/completions"), json=body) as response:
        limited = (response.status, response.headers.get("Retry-After"), await response.json())
    async with session.post(server.make_url("/v1/chat/completions"), json={"model": "m"}) as r:
        malformed = (r.status, await r.json())
    async with session.post(server.make_url("/v1/chat/completions"), data=b"{") as r:
        unparsable = r.status
    bad_tools = {**body, "tools": ["handoff"]}
    async with session.post(server.make_url("/v1/chat/completions"), json=bad_tools) as r:
        tools_refused = r.status

    assert limited[:2] == (429, "2.5")
    assert set(limited[2]["error"]) == {"message", "type", "param", "code"}
    assert limited[2]["error"]["code"] == "rate_limit_exceeded"
    assert malformed[0] == 400
    assert malformed[1]["error"]["type"] == "invalid_request_error"
    assert unparsable == 400
    assert tools_refused == 400


async def test_requests_are_recorded_and_forgotten_and_models_listed(
    mock: tuple[BaseTestServer, aiohttp.ClientSession],
) -> None:
    server, session = mock
    await chat(mock, "hello")
    async with session.get(server.make_url("/v1/models")) as response:
        models = await response.json()
    async with session.get(server.make_url("/_mock/requests")) as response:
        before = await response.json()
    async with session.delete(server.make_url("/_mock/requests")) as response:
        assert response.status == 200
    async with session.get(server.make_url("/_mock/requests")) as response:
        after = await response.json()

    assert models["object"] == "list"
    assert {m["id"] for m in models["data"]} >= {"hiker-mock"}
    assert [r["path"] for r in before] == ["/v1/chat/completions", "/v1/models"]
    assert after == []


async def test_a_transcription_needs_a_file_and_a_model(
    mock: tuple[BaseTestServer, aiohttp.ClientSession],
) -> None:
    server, session = mock
    form = aiohttp.FormData()
    form.add_field("model", "whisper-1")
    async with session.post(server.make_url("/v1/audio/transcriptions"), data=form) as response:
        missing = response.status
    form = aiohttp.FormData()
    form.add_field("model", "whisper-1")
    form.add_field("file", b"OggS", filename="v.ogg", content_type="audio/ogg")
    async with session.post(server.make_url("/v1/audio/transcriptions"), data=form) as response:
        answer = await response.json()

    assert missing == 400
    assert answer["text"]
    assert answer["usage"]["type"] == "tokens"
    assert answer["usage"]["input_tokens"] == 1
