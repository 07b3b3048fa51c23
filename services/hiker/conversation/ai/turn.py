"""One AI turn: the messages a model is sent for a conversation's new messages, and what it
answered, tool rounds included.

A turn has no side effects of its own: what the model asked for (a reply, interactive choices,
reminders, a handoff) comes back in a ``TurnResult`` that the caller carries out once, in the
claim it holds. A ``ModelUnavailable`` raised from here means the whole turn is asked again
later; nothing of a half-run turn was done.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from hiker.conversation.state import Turn
from hiker.core.actions import AnyAction
from hiker.core.ai_model import ChatMessage, ContextTooLong, ModelClient, Usage
from hiker.core.contracts import MessageReceived
from hiker.core.requests import Handoff, Remind


@dataclass(frozen=True)
class TurnInput:
    """What the model is told: the system prompt, the history before the new messages (oldest
    first), the new messages since the last answer, and context a handler added."""

    system_prompt: str | None
    history: Sequence[Turn]
    new_messages: Sequence[MessageReceived]
    extra_context: str | None = None


@dataclass
class TurnResult:
    """What the model answered: the text to send (None or blank: nothing), interactive replies
    it chose through tools (sent before the text), reminders, a handoff, the tokens all its
    calls used, and the transcripts of voice notes by wamid (kept in the history)."""

    text: str | None = None
    actions: list[AnyAction] = field(default_factory=list)
    reminders: list[Remind] = field(default_factory=list)
    handoff: Handoff | None = None
    usage: Usage = field(default_factory=Usage)
    transcripts: dict[str, str] = field(default_factory=dict)
    calls: int = 0


class TurnRunner:
    """Runs turns against one model client."""

    def __init__(self, client: ModelClient) -> None:
        self._client = client

    async def run(self, turn: TurnInput) -> TurnResult:
        """Ask the model about ``turn``; on a context-length error, once more without the
        older half of the history."""
        result = TurnResult()
        history = list(turn.history)
        try:
            completion = await self._client.complete(_messages(turn, history))
        except ContextTooLong:
            completion = await self._client.complete(_messages(turn, history[len(history) // 2 :]))
            result.calls += 1
        result.calls += 1
        result.usage = completion.usage
        result.text = completion.content
        return result


def _messages(turn: TurnInput, history: Sequence[Turn]) -> list[ChatMessage]:
    messages: list[ChatMessage] = []
    if turn.system_prompt:
        messages.append({"role": "system", "content": turn.system_prompt})
    if turn.extra_context:
        messages.append({"role": "system", "content": turn.extra_context})
    for past in history:
        role = "user" if past.direction == "in" else "assistant"
        messages.append({"role": role, "content": past.text or f"[{past.type}]"})
    for message in turn.new_messages:
        messages.append({"role": "user", "content": message.text or f"[{message.message_type}]"})
    return messages
