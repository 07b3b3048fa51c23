"""What the AI pipeline (``conversation.ai.engine``) asks of the world: where messages wait,
the budgets, handoffs and the wait queues; Redis and the broker in the service, fakes in tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

from hiker.conversation.ai.budget import Budget
from hiker.conversation.state import Turn
from hiker.core.claims import ClaimStep
from hiker.core.contracts import AITurnScheduled, MessageReceived, TimerScheduled

# Publish a due turn after that many seconds (``ConversationOutbox.schedule_ai``).
ScheduleTurn = Callable[[AITurnScheduled, float], Awaitable[None]]
# Set a reminder's next hop (``Answering.schedule_hop``).
ScheduleReminder = Callable[[TimerScheduled], Awaitable[None]]


class Waiting(Protocol):
    """The messages waiting for a turn (``PendingTurns`` in Redis)."""

    async def add(self, message: MessageReceived) -> None: ...

    async def waiting(self, phone_number_id: str, user: str) -> list[MessageReceived]: ...

    async def forget(self, phone_number_id: str, user: str, wamids: Sequence[str]) -> None: ...

    def answered_step(
        self,
        phone_number_id: str,
        user: str,
        answered: Sequence[MessageReceived],
        said: Sequence[Turn],
        transcripts: Mapping[str, str],
    ) -> ClaimStep: ...


class Budgets(Protocol):
    """Today's token budgets (``TokenBudget`` in Redis)."""

    async def spent(self, phone_number_id: str, user: str) -> Budget | None: ...

    async def spend(self, phone_number_id: str, user: str, tokens: int) -> None: ...


class HandsOver(Protocol):
    """Where a handoff is written (``core.ownership.OwnershipStore``)."""

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
    ) -> object: ...
