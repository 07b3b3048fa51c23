"""In-memory stand-ins for the handlers' ports: claims, conversation state, pacing, Graph, and
what the handlers publish. No broker, no Redis, no sleeping: time is a ``Clock`` the test moves.

``InMemoryClaims`` keeps the values ``ClaimStore`` keeps in Redis (lease, call mark, doubt mark,
done) with the same meaning; ``tests/integration/test_claims_contract.py`` runs the same
scenarios against both, so the fake cannot drift from the real store unnoticed.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hiker.conversation.state import LATER_ALREADY_RECORDED, RECORDED_LATEST, Turn
from hiker.conversation.timers import Activity
from hiker.core.actions import AnyAction
from hiker.core.claims import (
    CALL_PREFIX,
    CLAIM_PREFIX,
    DONE,
    DOUBT_PREFIX,
    GO_NOW,
    Claim,
    ClaimLost,
    Claims,
    ClaimState,
    ClaimStep,
    call_value,
    doubt_value,
    lease_value,
    mark_deadline_ms,
)
from hiker.core.contracts import (
    IdleTimerStarted,
    MessageSent,
    ParkedHeaders,
    SendMessage,
    SendParked,
)
from hiker.sender.graph import GraphCall
from hiker.sender.pacing import Paced, paced
from hiker.sender.retry import GraphOutcome


class Clock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class FakeStep(ClaimStep):
    """A claim step whose work is Python (run when the claim is taken), for the fakes."""

    # The step's result: an integer, or the list a step of several values returns.
    run: Callable[[], int | tuple[int | str | None, ...]] = lambda: GO_NOW


class InMemoryClaims:
    """``ClaimStore``'s semantics over a dict, on a ``Clock``."""

    def __init__(self, clock: Clock, *, lease_seconds: float, done_ttl_seconds: int) -> None:
        self._clock = clock
        self._lease = lease_seconds
        self.lease_seconds = lease_seconds
        self.done_ttl_ms = done_ttl_seconds * 1000
        self.values: dict[str, tuple[bytes, float]] = {}  # key -> (value, expires at)
        # ``fail_next``: the next store operations fail with this (Redis refusing).
        self._failing: list[BaseException] = []

    def now(self) -> float:
        return self._clock()

    def get(self, key: str) -> bytes | None:
        entry = self.values.get(key)
        if entry is None or entry[1] <= self.now():
            self.values.pop(key, None)
            return None
        return entry[0]

    def _set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        self.values[key] = (value, self.now() + ttl_seconds)

    def fail_next(self, count: int, error: BaseException) -> None:
        self._failing.extend([error] * count)

    def _check(self) -> None:
        if self._failing:
            raise self._failing.pop(0)

    async def claim(
        self, key: str, *, step: ClaimStep | None = None, call_within: float | None = None
    ) -> Claim:
        self._check()
        value = lease_value()
        current = self.get(key)
        if current is None:
            self._set(key, value, self._lease)
            ran = step.run() if isinstance(step, FakeStep) else GO_NOW
            values = ran if isinstance(ran, tuple) else (ran,)
            result = int(values[0] or 0)
            if call_within is not None and not isinstance(ran, tuple) and result == GO_NOW:
                mark = call_value(call_within, value, self.now())
                self._set(key, mark, self.done_ttl_ms / 1000)
                return Claim(
                    self,
                    key,
                    mark,
                    ClaimState.CLAIMED,
                    step_result=result,
                    step_values=values,
                    in_call=True,
                )
            return Claim(
                self, key, value, ClaimState.CLAIMED, step_result=result, step_values=values
            )
        if current.startswith(CLAIM_PREFIX):
            return Claim(self, key, value, ClaimState.BUSY)
        if current.startswith((CALL_PREFIX, DOUBT_PREFIX)):
            if self.now() * 1000 < mark_deadline_ms(current):
                return Claim(self, key, value, ClaimState.BUSY)
            doubt = doubt_value(self._lease, value, self.now())
            self._set(key, doubt, self.done_ttl_ms / 1000)
            return Claim(self, key, doubt, ClaimState.IN_DOUBT)
        return Claim(self, key, value, ClaimState.DONE)

    async def confirm(
        self, key: str, value: bytes = DONE, *, step: ClaimStep | None = None
    ) -> None:
        self._check()
        self._set(key, value, self.done_ttl_ms / 1000)
        if isinstance(step, FakeStep):
            step.run()

    async def swap(
        self, key: str, expected: bytes, new: bytes, ttl_ms: int, *, strict: bool = True
    ) -> None:
        self._check()
        if self.get(key) != expected:
            if strict:
                raise ClaimLost(key)
            return
        if new:
            self._set(key, new, ttl_ms / 1000)
        else:
            del self.values[key]


class InMemoryConversations:
    """What ``ConversationStore`` keeps per conversation: the last inbound message, the state
    (versioned, compare-and-set, with what saved it and the state before), and history."""

    def __init__(self, history_length: int = 50) -> None:
        self.latest: dict[tuple[str, str], Activity] = {}
        # (pnid, user) -> (version, state, saved by, state before)
        self.states: dict[tuple[str, str], tuple[int, dict[str, Any], str, dict[str, Any]]] = {}
        self.histories: dict[tuple[str, str], list[Turn]] = {}
        self._length = history_length

    def record_step(
        self,
        phone_number_id: str,
        user: str,
        wamid: str,
        received_at: float,
        sent_at: int,
        turn: Turn | None = None,
    ) -> ClaimStep:
        conversation = (phone_number_id, user)

        def record() -> tuple[int | str | None, ...]:
            current = self.latest.get(conversation)
            latest = RECORDED_LATEST
            if current is not None and current.last_received_at > received_at:
                latest = LATER_ALREADY_RECORDED
            else:
                self.latest[conversation] = Activity(wamid, received_at)
            if turn is not None:
                self._append(conversation, [turn])
            version, state, by, before = self.states.get(conversation, (0, {}, "", {}))
            if by == wamid:
                return (latest, version, json.dumps(before), 1)
            return (latest, version, json.dumps(state) if state else "", 0)

        return FakeStep("", run=record)

    async def save_state(
        self,
        phone_number_id: str,
        user: str,
        *,
        read_at_version: int,
        saved_by: str,
        state: dict[str, Any],
    ) -> bool:
        conversation = (phone_number_id, user)
        version, current, by, _ = self.states.get(conversation, (0, {}, "", {}))
        if by == saved_by:
            return True
        if version != read_at_version:
            return False
        self.states[conversation] = (version + 1, copy.deepcopy(state), saved_by, current)
        return True

    async def read_state(self, phone_number_id: str, user: str) -> tuple[int, dict[str, Any]]:
        version, state, _, _ = self.states.get((phone_number_id, user), (0, {}, "", {}))
        return version, copy.deepcopy(state)

    def append_step(
        self, phone_number_id: str, user: str, turns: Sequence[Turn]
    ) -> ClaimStep | None:
        if not turns:
            return None

        def append() -> int:
            self._append((phone_number_id, user), turns)
            return 1

        return FakeStep("", run=append)

    async def append_turns(self, phone_number_id: str, user: str, turns: Sequence[Turn]) -> None:
        self._append((phone_number_id, user), turns)

    def _append(self, conversation: tuple[str, str], turns: Sequence[Turn]) -> None:
        history = self.histories.setdefault(conversation, [])
        history.extend(t for t in turns if t not in history)
        del history[: max(0, len(history) - self._length)]

    async def history(self, phone_number_id: str, user: str, limit: int) -> list[Turn]:
        return self.histories.get((phone_number_id, user), [])[-limit:] if limit > 0 else []

    async def last_activity(self, phone_number_id: str, user: str) -> Activity | None:
        return self.latest.get((phone_number_id, user))


@dataclass
class Published:
    """What a handler published: its outbox, as lists (set ``failing`` to refuse)."""

    sends: list[SendMessage] = field(default_factory=list)
    timers: list[tuple[IdleTimerStarted, float]] = field(default_factory=list)
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

    async def schedule(self, timer: IdleTimerStarted, delay_seconds: float) -> None:
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
        self.after_call: Callable[[], Awaitable[None]] | None = None

    async def send(self, phone_number_id: str, to: str, action: AnyAction) -> GraphCall:
        self.calls.append(action)
        outcome = (
            self.outcomes.pop(0)
            if self.outcomes
            else GraphOutcome(200, message_id=f"wamid.OUT{len(self.calls)}")
        )
        if self.after_call is not None:
            await self.after_call()
        error = self.error if outcome.http_status != 200 else None
        return GraphCall(outcome, 0.01, error)
