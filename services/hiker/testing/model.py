"""``FakeModel``: a language model that answers from a script, for testing a bot's AI path.

```python
model = FakeModel(
    calls_tool("order_status", order="A7"),       # first call: the model asks for a tool
    "Your order A7 ships on Monday.",             # second call: it answers
    transcripts=["where is my order A7"],         # what voice notes are heard as
)
async with BotHarness(bot, model=model) as chat:
    assert await chat.send("where is A7?") == [Text(body="Your order A7 ships on Monday.")]
assert model.requests[1].tool_results == ['{"status": "shipped"}']
```

Each ``complete`` takes the next scripted answer: a text, a ``Completion``, or an exception
(``ModelUnavailable``, ``ContextTooLong``...) to raise. It records every request (messages and
tools) so a test can check what the model was told. It speaks ``hiker.core.ai_model``'s
``ModelClient``, as the HTTP client does.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hiker.core.ai_model import ChatMessage, Completion, ToolCall, ToolSpec, Transcript, Usage

Scripted = str | Completion | Exception

_ids = itertools.count(1)


def calls_tool(name: str, /, **arguments: Any) -> Completion:
    """An answer that asks for the tool ``name`` with ``arguments``."""
    return calls_tools((name, arguments))


def calls_tools(*calls: tuple[str, Mapping[str, Any] | str]) -> Completion:
    """An answer asking for several tools at once: (name, arguments: a mapping, or the raw
    JSON text a model wrote, even a malformed one)."""
    return Completion(
        content=None,
        tool_calls=tuple(
            ToolCall(
                f"call_{next(_ids)}",
                name,
                arguments if isinstance(arguments, str) else json.dumps(dict(arguments)),
            )
            for name, arguments in calls
        ),
        finish_reason="tool_calls",
    )


@dataclass(frozen=True)
class Request:
    """One ``complete`` call as the model received it."""

    messages: tuple[ChatMessage, ...]
    tools: tuple[ToolSpec, ...]

    @property
    def tool_names(self) -> list[str]:
        return [str(tool["function"]["name"]) for tool in self.tools]

    @property
    def tool_results(self) -> list[str]:
        """The contents of the ``tool`` messages, in order."""
        return [str(m["content"]) for m in self.messages if m.get("role") == "tool"]

    def contents(self, role: str) -> list[Any]:
        """The contents of the messages of ``role`` (``system``, ``user``, ``assistant``)."""
        return [m.get("content") for m in self.messages if m.get("role") == role]


class FakeModel:
    """A ``ModelClient`` that answers from a script and records what it was asked."""

    def __init__(
        self,
        *answers: Scripted,
        transcripts: Iterable[str | Exception] = (),
        usage: Usage | None = None,
    ) -> None:
        self._answers = list(answers)
        self._transcripts = list(transcripts)
        # Each answer's usage unless it is a Completion of its own; None: estimated from the
        # characters sent and answered (about four to a token), so budgets see something.
        self._usage = usage
        self.requests: list[Request] = []
        # (audio, filename, content type) of each transcription asked for.
        self.heard: list[tuple[bytes, str, str]] = []
        self.closed = False

    def script(self, *answers: Scripted) -> None:
        """More answers, after those left."""
        self._answers.extend(answers)

    @property
    def unused(self) -> int:
        """Scripted answers not asked for yet."""
        return len(self._answers)

    async def complete(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
    ) -> Completion:
        self.requests.append(Request(tuple(dict(m) for m in messages), tuple(tools)))
        if not self._answers:
            raise AssertionError(
                f"FakeModel: call {len(self.requests)} has no scripted answer left"
            )
        answer = self._answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, str):
            answer = Completion(content=answer, finish_reason="stop")
        if answer.usage != Usage():
            return answer
        sent = sum(len(json.dumps(m, default=str)) for m in messages)
        usage = self._usage or Usage(max(1, sent // 4), max(1, len(answer.content or "") // 4))
        return Completion(answer.content, answer.tool_calls, usage, answer.finish_reason)

    async def transcribe(self, audio: bytes, *, filename: str, content_type: str) -> Transcript:
        self.heard.append((audio, filename, content_type))
        if not self._transcripts:
            raise AssertionError(f"FakeModel: transcription {len(self.heard)} is not scripted")
        heard = self._transcripts.pop(0)
        if isinstance(heard, Exception):
            raise heard
        return Transcript(heard, Usage(prompt_tokens=max(1, len(audio) // 1000)))

    async def close(self) -> None:
        self.closed = True
