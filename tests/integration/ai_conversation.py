"""``hiker conversation`` with the AI responder asking the test's model server
(``HIKER_TEST_MODEL_URL``): a child process the crash test can SIGKILL mid-call."""

from __future__ import annotations

import os
from collections.abc import Sequence

import aiohttp

from hiker.conversation.app import conversation
from hiker.core.ai_model import (
    ChatMessage,
    Completion,
    ModelUnavailable,
    ToolSpec,
    Transcript,
    Usage,
)
from hiker.core.kernel import run


class RemoteModel:
    """A ``ModelClient`` asking the test's model server at ``HIKER_TEST_MODEL_URL``."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._session: aiohttp.ClientSession | None = None

    async def complete(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> Completion:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.post(self._url, json={"messages": list(messages)}) as response:
            if response.status >= 500:
                raise ModelUnavailable(f"HTTP {response.status}", outcome="server_error")
            body = await response.json()
        return Completion(str(body["text"]), usage=Usage(10, 5))

    async def transcribe(self, audio: bytes, *, filename: str, content_type: str) -> Transcript:
        raise NotImplementedError

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


if __name__ == "__main__":
    run(conversation(model=RemoteModel(os.environ["HIKER_TEST_MODEL_URL"])))
