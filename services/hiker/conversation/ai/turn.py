"""One AI turn: the messages a model is sent for a conversation's new messages, and what it
answered, tool rounds included.

A turn has no side effects of its own: what the model asked for (a reply, interactive choices,
reminders, a handoff) comes back in a ``TurnResult`` that the caller carries out once, in the
claim it holds. A ``ModelUnavailable`` raised from here means the whole turn is asked again
later; nothing of a half-run turn was done.

The tool loop follows OpenAI's chat completions (``tools`` in the request, ``tool_calls`` in
the answer, then the assistant message carrying them and one ``tool`` message per call with
its ``tool_call_id``): shapes from OpenAI's API reference (SDK types), not from Meta.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from hiker.conversation.ai.context import (
    PERSON_NOTE,
    MessageReader,
    history_messages,
    is_person,
)
from hiker.conversation.ai.tools import (
    Effects,
    Tool,
    ToolContext,
    ToolError,
    builtin_tools,
    tools_by_name,
)
from hiker.conversation.state import Turn
from hiker.core.actions import TEXT_MAX, AnyAction, Text
from hiker.core.ai_model import (
    ChatMessage,
    Completion,
    ContextTooLong,
    ModelClient,
    ToolCall,
    ToolSpec,
    Usage,
)
from hiker.core.contracts import MessageReceived
from hiker.core.media import MediaSource
from hiker.core.requests import Handoff, Remind
from hiker.core.settings.ai import AISettings

log = logging.getLogger(__name__)

# What the user is told when the model handed the conversation over without a word of its own.
HANDOFF_TEXT: Final = "I'm passing you to a person from our team; they will answer you here."
# ConversationSettings.handoff_minutes' default: how long a handoff lasts unless told.
DEFAULT_HANDOFF_MINUTES: Final = 30.0


@dataclass(frozen=True)
class TurnInput:
    """What the model is told: the system prompt, the history before the new messages (oldest
    first), the new messages since the last answer, and context a handler added. ``media``,
    when given, is what this turn's media download through instead of the runner's own (a
    handler's message carries its own)."""

    system_prompt: str | None
    history: Sequence[Turn]
    new_messages: Sequence[MessageReceived]
    extra_context: str | None = None
    media: MediaSource | None = None


@dataclass
class TurnResult:
    """What the model answered: the text to send (None or blank: nothing), interactive replies
    it chose through tools (sent before the text), reminders, a handoff, the tokens all its
    calls used, and the transcripts of voice notes by wamid (kept in the history).

    ``calls`` counts the requests made to the API: completions and transcriptions."""

    text: str | None = None
    actions: list[AnyAction] = field(default_factory=list)
    reminders: list[Remind] = field(default_factory=list)
    handoff: Handoff | None = None
    usage: Usage = field(default_factory=Usage)
    transcripts: dict[str, str] = field(default_factory=dict)
    calls: int = 0
    # The tools the model called, by name, in order (logs, tests).
    tools_called: list[str] = field(default_factory=list)

    def add_usage(self, usage: Usage) -> None:
        self.usage = Usage(
            self.usage.prompt_tokens + usage.prompt_tokens,
            self.usage.completion_tokens + usage.completion_tokens,
        )

    def reply_actions(self) -> list[AnyAction]:
        """What to send, in order: the interactive replies, then the text (in as many
        messages as Meta's 4096 characters need); empty when the model said nothing."""
        return [*self.actions, *(Text(body=part) for part in split_text(self.text or ""))]


class TurnRunner:
    """Runs turns against one model client: the history and new messages in, at most
    ``max_tool_rounds`` rounds of tool calls, then an answer.

    ``tools`` are a bot's own (``@bot.tool``), offered beside the built-ins (``handoff``,
    ``send_buttons``, ``send_list``, ``remind``); ``media`` downloads voice notes (transcribed
    when ``transcribe``) and images (shown to the model when ``vision``).
    """

    def __init__(
        self,
        client: ModelClient,
        *,
        tools: Sequence[Tool] = (),
        media: MediaSource | None = None,
        vision: bool = False,
        transcribe: bool = False,
        max_tool_rounds: int = 4,
        handoff_minutes: float = DEFAULT_HANDOFF_MINUTES,
        handoff_text: str = HANDOFF_TEXT,
    ) -> None:
        self._client = client
        self._tools = tools_by_name([*builtin_tools(handoff_minutes=handoff_minutes), *tools])
        self._media = media
        self._vision = vision
        self._transcribe = transcribe
        self._max_tool_rounds = max_tool_rounds
        self._handoff_text = handoff_text

    @property
    def tools(self) -> list[Tool]:
        return list(self._tools.values())

    async def run(self, turn: TurnInput) -> TurnResult:
        """Ask the model about ``turn``; its tool calls answered, up to the round cap, then
        one call without tools so the turn ends with an answer."""
        result = TurnResult()
        reader = MessageReader(
            self._client,
            media=turn.media or self._media,
            vision=self._vision,
            transcribe=self._transcribe,
        )
        new: list[ChatMessage] = []
        for message in turn.new_messages:
            read = await reader.read(message)
            result.calls += read.calls
            result.add_usage(read.usage)
            if read.transcript is not None:
                result.transcripts[message.wamid] = read.transcript
            new.append({"role": "user", "content": read.content})
        conversation = _Conversation(_head(turn), history_messages(turn.history), new)
        last = turn.new_messages[-1] if turn.new_messages else None
        context = ToolContext(
            last.phone_number_id if last else None,
            last.user if last else None,
            last.wamid if last else None,
        )
        effects = Effects()
        specs: list[ToolSpec] = [tool.spec() for tool in self._tools.values()]
        for round_ in range(self._max_tool_rounds + 1):
            offered = specs if round_ < self._max_tool_rounds else []
            completion = await self._complete(conversation, offered, result)
            if not completion.tool_calls or not offered:
                result.text = completion.content
                break
            conversation.rounds.append(_assistant(completion))
            for call in completion.tool_calls:
                result.tools_called.append(call.name)
                content = await self._call(call, context, effects)
                conversation.rounds.append(
                    {"role": "tool", "tool_call_id": call.id, "content": content}
                )
        result.actions, result.reminders, result.handoff = (
            effects.actions,
            effects.reminders,
            effects.handoff,
        )
        if result.handoff is not None and not (result.text or "").strip():
            result.text = self._handoff_text
        return result

    async def _complete(
        self, conversation: _Conversation, tools: Sequence[ToolSpec], result: TurnResult
    ) -> Completion:
        """One call; on a context-length error (once a turn), the older half of the history
        dropped and the call made again."""
        while True:
            result.calls += 1
            try:
                completion = await self._client.complete(conversation.messages(), tools)
            except ContextTooLong:
                if not conversation.trim():
                    raise
                log.info("the model's context was too long: the older history is left out")
                continue
            result.add_usage(completion.usage)
            return completion

    async def _call(self, call: ToolCall, context: ToolContext, effects: Effects) -> str:
        """The ``tool`` message's content: the tool's answer, or what was wrong."""
        tool = self._tools.get(call.name)
        if tool is None:
            return _error(f"there is no tool {call.name!r}; the tools are {', '.join(self._tools)}")
        try:
            arguments = json.loads(call.arguments or "{}")
        except ValueError:
            return _error("the arguments are not valid JSON")
        if not isinstance(arguments, dict):
            return _error("the arguments must be a JSON object")
        try:
            return await tool.call(arguments, context, effects)
        except ToolError as exc:
            return _error(str(exc))
        except (
            Exception
        ) as exc:  # a bot's own tool failing: the model hears of it, the turn goes on
            log.warning(
                "a tool raised; the model is told",
                extra={"tool": call.name, "error": type(exc).__name__},
                exc_info=True,
            )
            return _error(f"the tool failed: {type(exc).__name__}: {exc}")


class _Conversation:
    """The messages of a turn as it goes: the head (system), the history (trimmable once),
    the new messages, and the tool rounds so far."""

    def __init__(
        self, head: list[ChatMessage], past: list[ChatMessage], new: list[ChatMessage]
    ) -> None:
        self.head, self.past, self.new = head, past, new
        self.rounds: list[ChatMessage] = []
        self._trimmed = False

    def messages(self) -> list[ChatMessage]:
        return [*self.head, *self.past, *self.new, *self.rounds]

    def trim(self) -> bool:
        """Leave out the older half of the history; False when done already or nothing left."""
        if self._trimmed or not self.past:
            return False
        self._trimmed = True
        del self.past[: max(1, len(self.past) // 2)]
        return True


def _head(turn: TurnInput) -> list[ChatMessage]:
    head: list[ChatMessage] = []
    if turn.system_prompt:
        head.append({"role": "system", "content": turn.system_prompt})
    if any(is_person(past) for past in turn.history):
        head.append({"role": "system", "content": PERSON_NOTE})
    if turn.extra_context:
        head.append({"role": "system", "content": turn.extra_context})
    return head


def _assistant(completion: Completion) -> ChatMessage:
    """The assistant message that carries the model's tool calls, as it must precede their
    ``tool`` messages."""
    return {
        "role": "assistant",
        "content": completion.content,
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in completion.tool_calls
        ],
    }


def _error(problem: str) -> str:
    return json.dumps({"error": problem}, ensure_ascii=False)


def split_text(text: str, limit: int = TEXT_MAX) -> list[str]:
    """``text`` in parts of at most ``limit`` characters, cut at a paragraph, a line or a
    space where one is near; blank: none."""
    parts: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        cut = max(rest.rfind(sep, limit // 2, limit) for sep in ("\n\n", "\n", " "))
        cut = cut if cut > 0 else limit
        parts.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    return [*parts, rest] if rest else parts


def follow_up_input(system_prompt: str | None, history: Sequence[Turn], note: str) -> TurnInput:
    """The turn of a reminder the model set (``remind``) coming due: no new message, the
    history, and the model's own note of what to follow up on."""
    return TurnInput(
        system_prompt,
        history,
        [],
        extra_context=(
            "A reminder you set earlier has come due; the user has not written since. Your note: "
            f"{note}\nWrite to the user now to follow up on it, briefly."
        ),
    )


def build_turn_runner(
    client: ModelClient,
    settings: AISettings,
    *,
    media: MediaSource | None = None,
    bot_tools: Sequence[Tool] = (),
    handoff_minutes: float = DEFAULT_HANDOFF_MINUTES,
) -> TurnRunner:
    """The runner conversation uses: the settings' round cap, voice notes transcribed when
    ``HIKER_AI_TRANSCRIBE_MODEL`` is set, images shown when ``HIKER_AI_VISION``; ``media`` is
    conversation's Graph media (what a bot's ``download()`` uses), ``bot_tools`` the bot's own
    (``bot.tools``). ValueError when a bot's tool is named like a built-in."""
    return TurnRunner(
        client,
        tools=bot_tools,
        media=media,
        vision=settings.ai_vision,
        transcribe=settings.ai_transcribe_model is not None,
        max_tool_rounds=settings.ai_max_tool_rounds,
        handoff_minutes=handoff_minutes,
    )
