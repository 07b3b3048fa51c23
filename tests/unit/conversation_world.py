"""A conversation's handlers on the in-memory fakes, and responders that count, stall or
remind: what the conversation handler tests share."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from prometheus_client import CollectorRegistry

from hiker.conversation.handlers import ConversationHandlers
from hiker.conversation.memory import Conversation, Reminder
from hiker.conversation.metrics import ConversationMetrics
from hiker.conversation.responder import RuleBookResponder, as_responder
from hiker.conversation.rules import NumberPolicy
from hiker.conversation.rulesfile import default_rulebook
from hiker.conversation.rulesource import RuleSource
from hiker.core.actions import Text
from hiker.core.contracts import MessageReceived, TimerScheduled
from hiker.core.keys import Keys
from hiker.core.requests import Remind
from tests.fakes import (
    Clock,
    InMemoryClaims,
    InMemoryConversations,
    InMemoryOwnership,
    Published,
)

PNID = "100000000000001"


IDLE = 600.0


class World:
    def __init__(
        self,
        policy: NumberPolicy | None = None,
        responder: Any = None,
        responder_timeout: float | None = None,
    ) -> None:
        self.clock = Clock()
        self.claims = InMemoryClaims(self.clock, lease_seconds=30, done_ttl_seconds=3600)
        self.conversations = InMemoryConversations()
        self.ownership = InMemoryOwnership(self.conversations)
        self.published = Published()
        self.keys = Keys("t:")
        book = default_rulebook("are you there", IDLE)
        if policy is not None:
            book = replace(book, default=policy)
        self.rules = RuleSource(book)
        self.registry = CollectorRegistry()
        self.handlers = ConversationHandlers(
            rules=self.rules,
            responder=as_responder(responder or RuleBookResponder(self.rules)),
            conversations=self.conversations,
            claims=self.claims,
            keys=self.keys,
            send=self.published.send,
            schedule=self.published.schedule,
            metrics=ConversationMetrics(self.registry),
            responder_timeout_seconds=responder_timeout,
            clock=self.clock,
            handoffs=self.ownership,
        )

    def message(
        self, wamid: str, text: str = "hello", user: str = "15550001111"
    ) -> MessageReceived:
        return MessageReceived(
            wamid=wamid,
            phone_number_id=PNID,
            user=user,
            message_type="text",
            text=text,
            timestamp=int(self.clock()),
            received_at=self.clock(),
        )

    def counted(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


async def fired(world: World, wamid: str) -> TimerScheduled:
    [(timer, delay)] = [(t, d) for t, d in world.published.timers if t.wamid == wamid]
    world.clock.advance(delay)
    await world.handlers.on_timer_fired(timer)
    return timer


class Counting:
    """A responder with memory: counts the user's messages in the state, and reminds."""

    def __init__(self, remind: Remind | None = None) -> None:
        self.remind = remind
        self.seen_history: list[list[str | None]] = []
        self.reminders: list[Reminder] = []

    async def respond(self, message: MessageReceived, conversation: Conversation) -> Any:
        conversation.state["n"] = conversation.state.get("n", 0) + 1
        self.seen_history.append([t.text for t in await conversation.history()])
        answer: list[Any] = [Text(body=f"message {conversation.state['n']}")]
        if self.remind is not None:
            answer.append(self.remind)
        return answer

    async def on_reminder(self, reminder: Reminder, conversation: Conversation) -> Any:
        self.reminders.append(reminder)
        conversation.state["nudged"] = True
        return Text(body=f"still there? ({reminder.data.get('step')})")


def world_with(responder: Any) -> World:
    return World(responder=responder)


def texts(world: World) -> list[str]:
    return [a.body for s in world.published.sends for a in s.actions if isinstance(a, Text)]


class SlowOnce(Counting):
    """A responder that, the first time it is asked (a message, then a reminder), changes the
    state and then runs far past its deadline; it answers at once when asked again."""

    def __init__(self, remind: Remind | None = None) -> None:
        super().__init__(remind)
        self.stalled: set[str] = set()

    async def _stall_once(self, what: str, conversation: Conversation) -> None:
        if what not in self.stalled:
            self.stalled.add(what)
            conversation.state["half-done"] = True
            await asyncio.sleep(30)

    async def respond(self, message: MessageReceived, conversation: Conversation) -> Any:
        await self._stall_once("message", conversation)
        return await super().respond(message, conversation)

    async def on_reminder(self, reminder: Reminder, conversation: Conversation) -> Any:
        await self._stall_once("reminder", conversation)
        return await super().on_reminder(reminder, conversation)
