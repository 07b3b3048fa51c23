"""In-memory stand-ins for conversation's storage ports: claims and conversation state, on a
clock that moves only when told. No Redis, no sleeping.

``InMemoryClaims`` keeps the values ``ClaimStore`` keeps in Redis (lease, call mark, doubt mark,
done) with the same meaning, and ``InMemoryConversations`` what ``ConversationStore`` keeps;
``tests/integration/test_claims_contract.py`` runs the same scenarios against the fakes and the
real stores, so that what passes in ``BotHarness`` behaves the same in the pipeline.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hiker.conversation.state import LATER_ALREADY_RECORDED, RECORDED_LATEST, Turn
from hiker.conversation.timers import Activity
from hiker.core.claim_marks import (
    CALL_PREFIX,
    CLAIM_PREFIX,
    DONE,
    DOUBT_PREFIX,
    call_value,
    doubt_value,
    lease_value,
    mark_deadline_ms,
)
from hiker.core.claims import GO_NOW, Claim, ClaimLost, ClaimState, ClaimStep


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
        # (pnid, phone number) -> the business-scoped user id its conversation moved to
        self.moved: dict[tuple[str, str], str] = {}
        # (pnid, user) -> (owner_until, owner_reason): a handoff, read with each message
        self.owners: dict[tuple[str, str], tuple[float, str]] = {}
        # (pnid, user) -> when a person last took it (kept after they give it back)
        self.handed_at: dict[tuple[str, str], float] = {}
        self._length = history_length

    def record_step(
        self,
        phone_number_id: str,
        user: str,
        wamid: str,
        received_at: float,
        sent_at: int,
        turn: Turn | None = None,
        adopt_from: str | None = None,
    ) -> ClaimStep:
        conversation = (phone_number_id, user)

        def record() -> tuple[int | str | None, ...]:
            if adopt_from is not None and adopt_from != user:
                self._adopt((phone_number_id, adopt_from), conversation)
            current = self.latest.get(conversation)
            latest = RECORDED_LATEST
            if current is not None and current.last_received_at > received_at:
                latest = LATER_ALREADY_RECORDED
            else:
                self.latest[conversation] = Activity(wamid, received_at)
            if turn is not None:
                self._append(conversation, [turn])
            version, state, by, before = self.states.get(conversation, (0, {}, "", {}))
            until, reason = self.owners.get(conversation, (None, ""))
            owner = ("" if until is None else repr(until), reason)
            if by == wamid:
                return (latest, version, json.dumps(before), 1, *owner)
            return (latest, version, json.dumps(state) if state else "", 0, *owner)

        return FakeStep("", run=record)

    def move_step(
        self, phone_number_id: str, previous: Sequence[str], user: str
    ) -> ClaimStep | None:
        new = (phone_number_id, user)

        def move() -> int:
            # As ``ConversationStore``'s: what the new id holds wins, the rest joins it.
            for old in ((phone_number_id, p) for p in previous):
                self.moved[old] = user
                if old in self.latest:
                    self.latest.setdefault(new, self.latest.pop(old))
                if old in self.states:
                    self.states.setdefault(new, self.states.pop(old))
                if old in self.histories:
                    joined = self.histories.pop(old) + self.histories.get(new, [])
                    self.histories[new] = joined[-self._length :]
            return 1

        return FakeStep("", run=move)

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

    def _adopt(self, old: tuple[str, str], new: tuple[str, str]) -> None:
        # As ``ConversationStore``: what is under the phone number moves, unless already there.
        if old in self.latest and new not in self.latest:
            self.latest[new] = self.latest.pop(old)
        if old in self.states and new not in self.states:
            self.states[new] = self.states.pop(old)
        if old in self.histories and new not in self.histories:
            self.histories[new] = self.histories.pop(old)
        self.moved[old] = new[1]

    async def last_activity(self, phone_number_id: str, user: str) -> Activity | None:
        activity = self.latest.get((phone_number_id, user))
        moved_to = self.moved.get((phone_number_id, user))
        if activity is None and moved_to is not None:
            found = self.latest.get((phone_number_id, moved_to))
            if found is None:
                return None
            return self._owned(
                dataclasses.replace(found, moved_to=moved_to), (phone_number_id, moved_to)
            )
        return None if activity is None else self._owned(activity, (phone_number_id, user))

    def _owned(self, activity: Activity, conversation: tuple[str, str]) -> Activity:
        # Who owns it, read with the activity as ``ConversationStore.last_activity`` does.
        return dataclasses.replace(
            activity,
            owner_until=self.owners.get(conversation, (None, ""))[0],
            handed_at=self.handed_at.get(conversation),
        )
