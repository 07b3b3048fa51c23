"""``HttpModelClient`` against a real OpenAI-compatible server, when one is named: opt-in.

Set ``HIKER_TEST_AI_BASE_URL`` and ``HIKER_TEST_AI_MODEL`` (and ``HIKER_TEST_AI_API_KEY`` when
the server wants one; ``HIKER_TEST_AI_TRANSCRIBE_MODEL`` to try a transcription), e.g. a local
``ollama serve`` (http://127.0.0.1:11434/v1), ``llama-server -m model.gguf``
(http://127.0.0.1:8080/v1) or ``vllm serve`` (http://127.0.0.1:8000/v1). Unset, the tests skip:
no server with a model can be installed on the project's machines from PyPI or Debian (docs/ai.md
says what was looked for). Each call asks for a few tokens only.
"""

from __future__ import annotations

import io
import os
import uuid
import wave
from collections.abc import AsyncIterator

import aiohttp
import pytest
from pydantic import SecretStr

from hiker.core.ai_client import HttpModelClient
from hiker.core.ai_model import ModelRejected

BASE_URL = os.environ.get("HIKER_TEST_AI_BASE_URL")
MODEL = os.environ.get("HIKER_TEST_AI_MODEL")
KEY = os.environ.get("HIKER_TEST_AI_API_KEY")
TRANSCRIBE_MODEL = os.environ.get("HIKER_TEST_AI_TRANSCRIBE_MODEL")

pytestmark = pytest.mark.skipif(
    not (BASE_URL and MODEL), reason="no real server: set HIKER_TEST_AI_BASE_URL, _MODEL"
)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def client(session: aiohttp.ClientSession, model: str | None = None) -> HttpModelClient:
    assert BASE_URL is not None
    return HttpModelClient(
        session,
        base_url=BASE_URL,
        model=model or str(MODEL),
        api_key=SecretStr(KEY) if KEY else None,
        timeout_seconds=120,
        transcribe_model=TRANSCRIBE_MODEL,
    )


async def test_a_real_server_answers_with_usage(session: aiohttp.ClientSession) -> None:
    completion = await client(session).complete(
        [
            {"role": "system", "content": "Answer in one word."},
            {"role": "user", "content": "Say ok."},
        ]
    )
    assert completion.content or completion.tool_calls
    assert completion.usage.prompt_tokens > 0
    assert completion.finish_reason


async def test_a_real_server_takes_tools(session: aiohttp.ClientSession) -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "handoff",
            "description": "Hand the conversation to a human agent.",
            "parameters": {
                "type": "object",
                "properties": {"reason": {"type": "string"}},
                "required": ["reason"],
            },
        },
    }
    completion = await client(session).complete(
        [{"role": "user", "content": "I want to talk to a human agent now, please."}], [tool]
    )
    # Whether the model calls the tool is its choice; the shape must parse either way.
    assert completion.content is not None or completion.tool_calls
    for call in completion.tool_calls:
        assert call.name == "handoff"
        assert call.id


async def test_an_unknown_model_is_rejected(session: aiohttp.ClientSession) -> None:
    with pytest.raises(ModelRejected):
        await client(session, f"no-such-model-{uuid.uuid4().hex}").complete(
            [{"role": "user", "content": "hi"}]
        )


@pytest.mark.skipif(not TRANSCRIBE_MODEL, reason="set HIKER_TEST_AI_TRANSCRIBE_MODEL")
async def test_a_real_server_transcribes_a_second_of_silence(
    session: aiohttp.ClientSession,
) -> None:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(b"\x00\x00" * 16000)
    transcript = await client(session).transcribe(
        buffer.getvalue(), filename="silence.wav", content_type="audio/wav"
    )
    assert isinstance(transcript.text, str)
