"""Responders the integration tests load by name (HIKER_RESPONDER=tests.integration.bots:...):
the layer under ``hiker.bot``, which stays supported."""

from __future__ import annotations

import asyncio
from typing import Any

from hiker.bot import Conversation, Remind, Reminder, Text
from hiker.conversation.rulesource import RuleSource
from hiker.core.contracts import MessageReceived


class Counting:
    """Counts each user's messages in the state and answers with the count; ``remind <s>``
    asks for a reminder in that many seconds, ``keep <s>`` for one that outlives a reply."""

    async def respond(self, message: MessageReceived, conversation: Conversation) -> Any:
        conversation.state["n"] = conversation.state.get("n", 0) + 1
        answer: list[Any] = [Text(body=f"message {conversation.state['n']}")]
        word, _, seconds = (message.text or "").partition(" ")
        if word in ("remind", "keep") and seconds:
            answer.append(
                Remind(after_seconds=float(seconds), key=word, data={"n": conversation.state["n"]},
                       keep=word == "keep")
            )  # fmt: skip
        return answer

    async def on_reminder(self, reminder: Reminder, conversation: Conversation) -> Any:
        history = await conversation.history(limit=2)
        return Text(body=f"reminded {reminder.key} after {reminder.data['n']} ({len(history)})")


def counting(rules: RuleSource) -> Counting:
    return Counting()


class SlowOnce(Counting):
    """``Counting``, except that the first time it answers a message it counts and then hangs
    far past any deadline (a model call that never returns); asked again, it answers at once."""

    def __init__(self) -> None:
        self.stalled: set[str] = set()

    async def respond(self, message: MessageReceived, conversation: Conversation) -> Any:
        if message.wamid not in self.stalled:
            self.stalled.add(message.wamid)
            conversation.state["n"] = 100  # must never be saved: the call was cut off
            await asyncio.sleep(3600)
        return await super().respond(message, conversation)


def slow_once(rules: RuleSource) -> SlowOnce:
    return SlowOnce()
