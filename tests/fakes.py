"""In-memory stand-ins for the handlers' ports: pacing, Graph, and what the handlers publish;
claims, conversation state and the clock are ``hiker.testing.fakes`` (which ``BotHarness`` runs
on), re-exported here. No broker, no Redis, no sleeping: time is a ``Clock`` the test moves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from hiker.core.actions import AnyAction
from hiker.core.claims import GO_NOW, Claims
from hiker.core.contracts import (
    MessageSent,
    OwnerChanged,
    SendMessage,
    SendParked,
    TimerScheduled,
)
from hiker.core.ownership import MAX_HANDOFF_SECONDS, Ownership
from hiker.core.parked_headers import ParkedHeaders
from hiker.sender.graph import GraphCall
from hiker.sender.pacing import Paced, paced
from hiker.sender.retry import GraphOutcome
from hiker.testing.fakes import Clock, FakeStep, InMemoryClaims, InMemoryConversations

__all__ = [
    "Clock",
    "FakePacer",
    "FakeStep",
    "InMemoryClaims",
    "InMemoryConversations",
    "InMemoryOwnership",
    "Published",
    "ScriptedGraph",
]


@dataclass
class Published:
    """What a handler published: its outbox, as lists (set ``failing`` to refuse)."""

    sends: list[SendMessage] = field(default_factory=list)
    timers: list[tuple[TimerScheduled, float]] = field(default_factory=list)
    retries: list[tuple[SendMessage, int, int]] = field(default_factory=list)
    # The pacing slot each retry carried (a deferred send's), in the order of ``retries``.
    paced_until: list[int | None] = field(default_factory=list)
    parked: list[tuple[SendMessage, ParkedHeaders]] = field(default_factory=list)
    outcomes: list[MessageSent | SendParked] = field(default_factory=list)
    failing: BaseException | None = None

    def _check(self) -> None:
        if self.failing is not None:
            raise self.failing

    async def send(self, command: SendMessage) -> None:
        self._check()
        self.sends.append(command)

    async def schedule(self, timer: TimerScheduled, delay_seconds: float) -> None:
        self._check()
        self.timers.append((timer, delay_seconds))

    async def retry(
        self,
        command: SendMessage,
        attempt: int,
        delay_ms: int,
        *,
        paced_until_us: int | None = None,
    ) -> None:
        self._check()
        self.retries.append((command, attempt, delay_ms))
        self.paced_until.append(paced_until_us)

    async def park(self, command: SendMessage, why: ParkedHeaders) -> None:
        self._check()
        self.parked.append((command, why))

    async def sent(self, event: MessageSent) -> None:
        self._check()
        self.outcomes.append(event)

    async def parked_event(self, event: SendParked) -> None:
        self._check()
        self.outcomes.append(event)


class FakePacer:
    """Pacing on a ``Clock`` whose every reservation waits ``wait_us`` (``GO_NOW``: none); a
    send that reserved before keeps its slot, as ``Pacer``'s step does. Slots reserved and
    waits are recorded."""

    def __init__(self, wait_us: int = GO_NOW, clock: Clock | None = None) -> None:
        self.wait_us = wait_us
        self.clock = clock or Clock()
        self.reserved: list[int] = []
        self.waited: list[int | None] = []

    async def claim(
        self,
        claims: Claims,
        key: str,
        phone_number_id: str,
        user: str,
        *,
        reserved_us: int | None = None,
        call_within: float | None = None,
    ) -> Paced:
        def reserve() -> int | tuple[int | str | None, ...]:
            now = round(self.clock() * 1_000_000)
            if reserved_us is None:
                wait = self.wait_us
                self.reserved.append(now + wait)
            else:
                wait = max(GO_NOW, reserved_us - now)
            return (wait, now + wait) if wait else GO_NOW

        # As ``Pacer`` does: the step runs only when the claim is taken.
        step = FakeStep("", run=reserve)
        return paced(await claims.claim(key, step=step, call_within=call_within))

    async def wait(self, reserved_us: int | None) -> None:
        self.waited.append(reserved_us)


class ScriptedGraph:
    """Graph answering from a script of outcomes (then accepting), with hooks between calls."""

    def __init__(self, *outcomes: GraphOutcome, error: dict[str, Any] | None = None) -> None:
        self.outcomes = list(outcomes)
        self.error = error
        self.calls: list[AnyAction] = []
        # What each call carried as ``biz_opaque_callback_data`` (the action's key).
        self.callback_data: list[str | None] = []
        self.after_call: Callable[[], Awaitable[None]] | None = None

    async def send(
        self,
        phone_number_id: str,
        to: str,
        action: AnyAction,
        *,
        callback_data: str | None = None,
        marketing: bool = False,
    ) -> GraphCall:
        self.calls.append(action)
        self.callback_data.append(callback_data)
        outcome = (
            self.outcomes.pop(0)
            if self.outcomes
            else GraphOutcome(200, message_id=f"wamid.OUT{len(self.calls)}")
        )
        if self.after_call is not None:
            await self.after_call()
        error = self.error if outcome.http_status != 200 else None
        return GraphCall(outcome, 0.01, error)


@dataclass
class InMemoryOwnership:
    """What ``OwnershipStore`` writes, into the conversations' fake (read with each message
    there), and what it announces."""

    conversations: InMemoryConversations
    announced: list[OwnerChanged] = field(default_factory=list)

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
    ) -> Ownership:
        until = now + min(seconds, MAX_HANDOFF_SECONDS)
        conversation = (phone_number_id, user)
        current = self.conversations.owners.get(conversation)
        if not (lengthen_only and current is not None and current[0] >= until):
            self.conversations.owners[conversation] = (until, reason)
            self.conversations.handed_at[conversation] = now
            self.announced.append(
                OwnerChanged(
                    phone_number_id=phone_number_id,
                    user=user,
                    owner="human",
                    until=until,
                    reason=reason,
                    way=way,
                    changed_at=now,
                )
            )
        return Ownership(until, reason, now)

    async def give_back(
        self,
        phone_number_id: str,
        user: str,
        *,
        now: float,
        way: str = "api",
        only_reason: str | None = None,
    ) -> bool:
        current = self.conversations.owners.get((phone_number_id, user))
        if only_reason is not None and (current is None or current[1] != only_reason):
            return False
        self.conversations.owners.pop((phone_number_id, user), None)
        self.announced.append(
            OwnerChanged(
                phone_number_id=phone_number_id,
                user=user,
                owner="bot",
                way=way,
                changed_at=now,
            )
        )
        return True
