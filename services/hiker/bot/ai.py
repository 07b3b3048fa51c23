"""``bot.ai``: a handler asks the model itself, with context of its own.

```python
@bot.on_text(startswith="order")
async def order(msg, conv):
    status = await lookup(msg.text)
    return await bot.ai.answer(msg, conv, extra_context=f"The order's status: {status}")
```

``answer`` runs one turn through the same ``TurnRunner`` as the AI responder (the system
prompt, the last ``HIKER_AI_HISTORY_TURNS`` turns, the message; the built-in tools and the
bot's ``@bot.tool`` functions) and returns what to send: the interactive replies the model
chose, its text, its reminders and handoff, ready to be returned by the handler.

The seam: conversation, when it loads a bot and ``HIKER_AI_*`` is set, builds one runner
(``conversation.ai.turn.build_turn_runner(client, settings, media=..., bot_tools=bot.tools)``)
and calls ``bot.ai.attach(runner, system_prompt=..., history_turns=...)``;
``hiker.testing.BotHarness(bot, model=FakeModel(...))`` does the same on a scripted model.
Until then ``answer`` raises ``AINotConfigured``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from hiker.bot.messages import Message
from hiker.conversation.ai.turn import TurnInput, TurnResult, TurnRunner, follow_up_input
from hiker.conversation.memory import Conversation, Reminder
from hiker.core.actions import AnyAction
from hiker.core.contracts import MessageReceived
from hiker.core.media import MediaSource
from hiker.core.requests import Handoff, Remind

# Told what a handler's turn cost and produced (the engine counts tokens against the budget,
# keeps transcripts in the history): whose conversation (phone number id, user) and the result.
OnResult = Callable[[str, str, TurnResult], Awaitable[None]]


class AINotConfigured(RuntimeError):
    """``bot.ai.answer`` was called where no model is configured."""


@dataclass(frozen=True)
class _Attached:
    runner: TurnRunner
    system_prompt: str | None
    history_turns: int
    on_result: OnResult | None


class BotAI:
    """The model, as a bot's handlers reach it (``bot.ai``)."""

    def __init__(self) -> None:
        self._attached: _Attached | None = None

    def attach(
        self,
        runner: TurnRunner,
        *,
        system_prompt: str | None = None,
        history_turns: int = 20,
        on_result: OnResult | None = None,
    ) -> None:
        """Answer through ``runner`` from now on (conversation calls this when it loads the
        bot with ``HIKER_AI_*`` set; ``BotHarness(bot, model=...)`` in tests)."""
        self._attached = _Attached(runner, system_prompt, history_turns, on_result)

    def detach(self) -> None:
        self._attached = None

    @property
    def configured(self) -> bool:
        """Whether ``answer`` can call a model here."""
        return self._attached is not None

    def _using(self) -> _Attached:
        if self._attached is None:
            raise AINotConfigured(
                "bot.ai needs a model: set HIKER_AI_BASE_URL and HIKER_AI_MODEL for the "
                "conversation service (in tests: BotHarness(bot, model=FakeModel(...)))"
            )
        return self._attached

    async def run(
        self, msg: Message, conv: Conversation, *, extra_context: str | None = None
    ) -> TurnResult:
        """The model's whole answer to ``msg``: text, actions, reminders, handoff, usage."""
        attached = self._using()
        event = _event(msg)
        history = []
        if attached.history_turns > 0:
            # The history holds the message itself already (recorded before the handler ran).
            turns = await conv.history(limit=attached.history_turns + 1)
            history = [turn for turn in turns if turn.id != msg.id][-attached.history_turns :]
        result = await attached.runner.run(
            TurnInput(
                attached.system_prompt,
                history,
                [event],
                extra_context,
                media=_media_source(msg),
            )
        )
        if attached.on_result is not None:
            await attached.on_result(conv.phone_number_id, conv.user, result)
        return result

    async def answer(
        self, msg: Message, conv: Conversation, *, extra_context: str | None = None
    ) -> list[AnyAction | Remind | Handoff]:
        """What the model answers to ``msg``, as a handler returns it: the interactive
        replies it chose, its text, its reminders, its handoff (empty: nothing to send).

        Raises ``AINotConfigured`` without a model; ``ModelUnavailable`` (the model is
        away: the message is retried, as for any handler that raises)."""
        return _answer(await self.run(msg, conv, extra_context=extra_context))

    async def follow_up(
        self, reminder: Reminder, conv: Conversation
    ) -> list[AnyAction | Remind | Handoff]:
        """The model's answer to a reminder it set (``remind``) coming due: it is told its
        note and the history, and writes to the user. ``Bot`` calls this for the reminders
        ``is_ai_reminder`` names."""
        attached = self._using()
        history = await conv.history(limit=attached.history_turns)
        note = str(reminder.data.get("note", ""))
        asked = follow_up_input(attached.system_prompt, history, note)
        result = await attached.runner.run(asked)
        if attached.on_result is not None:
            await attached.on_result(conv.phone_number_id, conv.user, result)
        return _answer(result)


def _answer(result: TurnResult) -> list[AnyAction | Remind | Handoff]:
    answer: list[AnyAction | Remind | Handoff] = [*result.reply_actions(), *result.reminders]
    if result.handoff is not None:
        answer.append(result.handoff)
    return answer


def _event(msg: Message) -> MessageReceived:
    """The message as conversation received it (what a turn reads)."""
    return MessageReceived(
        wamid=msg.id,
        phone_number_id=msg.phone_number_id,
        user=msg.user.id,
        wa_id=msg.user.phone,
        contact_name=msg.user.name,
        username=msg.user.username,
        message_type=msg.kind,
        text=msg.text,
        reply_id=msg.button_id,
        timestamp=msg.timestamp,
        received_at=float(msg.timestamp),
        raw=msg.raw,
    )


def _media_source(msg: Message) -> MediaSource | None:
    """What the message's medium downloads through (conversation's Graph media)."""
    return msg.media.source if msg.media is not None else None
