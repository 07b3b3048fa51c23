"""The AI pipeline (``conversation.ai.engine``) on in-memory fakes: a scripted model, the
waiting messages and budgets as dicts, and the conversation fakes the handler tests use."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from hiker.conversation.ai.budget import Budget
from hiker.conversation.ai.engine import AITurns
from hiker.conversation.ai.policy import AIPolicy
from hiker.conversation.ai.turn import TurnInput, TurnResult, TurnRunner
from hiker.conversation.metrics import ConversationMetrics
from hiker.conversation.rulesfile import default_rulebook
from hiker.conversation.rulesource import RuleSource
from hiker.conversation.state import Turn
from hiker.core.ai_model import ModelError, Usage
from hiker.core.claims import ClaimStep
from hiker.core.contracts import AITurnScheduled, MessageReceived, TimerScheduled
from hiker.core.keys import Keys
from hiker.testing.fakes import Clock, FakeStep, InMemoryClaims, InMemoryConversations
from tests.fakes import Published

PNID = "100000000000001"


class ScriptedRunner(TurnRunner):
    """Answers each turn with the next scripted result (or raises it); records what it saw."""

    def __init__(self, *script: TurnResult | ModelError | asyncio.Event) -> None:
        self.script = list(script)
        self.asked: list[TurnInput] = []
        self.entered = asyncio.Event()

    async def run(self, turn: TurnInput) -> TurnResult:
        self.asked.append(turn)
        self.entered.set()
        outcome = self.script.pop(0)
        if isinstance(outcome, asyncio.Event):  # wait until released, then the next step
            await outcome.wait()
            outcome = self.script.pop(0)
        if isinstance(outcome, ModelError | asyncio.Event):
            raise outcome if isinstance(outcome, ModelError) else AssertionError(outcome)
        return outcome


def answer(text: str | None, tokens: int = 10) -> TurnResult:
    return TurnResult(text=text, usage=Usage(tokens, 0), calls=1)


class InMemoryWaiting:
    def __init__(self, conversations: InMemoryConversations) -> None:
        self.messages: dict[tuple[str, str], dict[str, MessageReceived]] = {}
        self._conversations = conversations

    async def add(self, message: MessageReceived) -> None:
        self.messages.setdefault((message.phone_number_id, message.user), {})[message.wamid] = (
            message
        )

    async def waiting(self, phone_number_id: str, user: str) -> list[MessageReceived]:
        found = self.messages.get((phone_number_id, user), {}).values()
        return sorted(found, key=lambda m: (m.timestamp, m.received_at, m.wamid))

    async def forget(self, phone_number_id: str, user: str, wamids: Sequence[str]) -> None:
        for wamid in wamids:
            self.messages.get((phone_number_id, user), {}).pop(wamid, None)

    def answered_step(
        self,
        phone_number_id: str,
        user: str,
        answered: Sequence[MessageReceived],
        said: Sequence[Turn],
        transcripts: Mapping[str, str],
    ) -> ClaimStep:
        def run() -> int:
            for message in answered:
                self.messages.get((phone_number_id, user), {}).pop(message.wamid, None)
            self._conversations.histories.setdefault((phone_number_id, user), []).extend(said)
            return 1

        return FakeStep("", run=run)


@dataclass
class InMemoryBudget:
    limit: int | None = None
    used: dict[tuple[str, str], int] = field(default_factory=dict)

    async def spent(self, phone_number_id: str, user: str) -> Budget | None:
        over = self.limit is not None and self.used.get((phone_number_id, user), 0) >= self.limit
        return "user" if over else None

    async def spend(self, phone_number_id: str, user: str, tokens: int) -> None:
        key = (phone_number_id, user)
        self.used[key] = self.used.get(key, 0) + tokens


@dataclass
class Handed:
    calls: list[tuple[str, str, float, str]] = field(default_factory=list)

    async def hand_to_person(
        self,
        phone_number_id: str,
        user: str,
        *,
        seconds: float,
        reason: str,
        now: float,
        lengthen_only: bool = False,
        way: str = "api",
    ) -> object:
        self.calls.append((phone_number_id, user, seconds, reason))
        return None


class AIWorld:
    def __init__(
        self, *script: TurnResult | ModelError | asyncio.Event, policy: AIPolicy | None = None
    ) -> None:
        self.clock = Clock()
        self.policy = policy or AIPolicy(turn_seconds=10, give_up_seconds=600)
        self.claims = InMemoryClaims(
            self.clock, lease_seconds=self.policy.lease_seconds, done_ttl_seconds=3600
        )
        self.conversations = InMemoryConversations()
        self.waiting = InMemoryWaiting(self.conversations)
        self.budget = InMemoryBudget()
        self.published = Published()
        self.turns_scheduled: list[tuple[AITurnScheduled, float]] = []
        self.reminders: list[TimerScheduled] = []
        self.handed = Handed()
        self.runner = ScriptedRunner(*script)
        self.registry = CollectorRegistry()
        self.metrics = ConversationMetrics(self.registry)
        self.rules = RuleSource(default_rulebook("are you there", 600))
        self.engine = AITurns(
            runner=self.runner,
            pending=self.waiting,
            budget=self.budget,
            conversations=self.conversations,
            claims=self.claims,
            keys=Keys("t:"),
            rules=self.rules,
            send=self.published.send,
            schedule=self._schedule,
            remind=self._remind,
            handoffs=self.handed,
            metrics=self.metrics,
            policy=self.policy,
            system_prompt=lambda: "be brief",
            clock=self.clock,
            random_unit=lambda: 0.5,
        )
        self.fired: list[AITurnScheduled] = []
        self._count = 0

    async def _schedule(self, turn: AITurnScheduled, delay: float) -> None:
        self.turns_scheduled.append((turn, delay))

    async def _remind(self, timer: TimerScheduled) -> None:
        self.reminders.append(timer)

    def message(self, user: str, text: str | None, kind: str = "text") -> MessageReceived:
        self._count += 1
        return MessageReceived(
            wamid=f"wamid.{self._count}",
            phone_number_id=PNID,
            user=user,
            wa_id=user,
            message_type=kind,
            text=text,
            timestamp=int(self.clock()),
            received_at=self.clock() + self._count / 1000,
        )

    async def say(self, message: MessageReceived) -> None:
        """What the inbound handler does with a message nothing took."""
        history = self.conversations.histories.setdefault((PNID, message.user), [])
        history.append(
            Turn("in", message.wamid, message.message_type, message.text, message.received_at)
        )
        await self.engine.take(message)

    async def fire_all(self) -> None:
        """Every turn scheduled so far comes due, in order."""
        due, self.turns_scheduled = self.turns_scheduled, []
        self.fired += [turn for turn, _ in due]
        await asyncio.gather(*(self.engine.on_due(turn) for turn, _ in due))

    def replies(self, user: str) -> list[list[str]]:
        return [
            [getattr(action, "body", action.type) for action in command.actions]
            for command in self.published.sends
            if command.to == user and command.kind == "reply"
        ]
