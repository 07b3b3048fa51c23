"""What answering a message and answering a reminder share: the ports both use, the claim on
the work, the responder asked within its deadline, its state saved, the reminders it set."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, Protocol

from hiker.conversation.memory import Conversation
from hiker.conversation.metrics import ConversationMetrics
from hiker.conversation.responder import Answer, Decided, decided
from hiker.conversation.state import Recorded, Turn
from hiker.conversation.timers import Activity, hop_seconds, start_reminder
from hiker.core.actions import MarkRead, readable
from hiker.core.claims import Claim, Claims, ClaimState, ClaimStep
from hiker.core.contracts import SendMessage, TimerScheduled
from hiker.core.delays import snap_ms
from hiker.core.errors import RetryLater
from hiker.core.settings import RESPONDER_SHARE_OF_LEASE

log = logging.getLogger(__name__)


class Conversations(Protocol):
    """What the handlers keep per conversation (``ConversationStore`` in Redis)."""

    def record_step(
        self,
        phone_number_id: str,
        user: str,
        wamid: str,
        received_at: float,
        sent_at: int,
        turn: Turn | None = None,
        adopt_from: str | None = None,
    ) -> ClaimStep: ...

    def move_step(
        self, phone_number_id: str, previous: Sequence[str], user: str
    ) -> ClaimStep | None: ...

    async def save_state(
        self,
        phone_number_id: str,
        user: str,
        *,
        read_at_version: int,
        saved_by: str,
        state: dict[str, Any],
    ) -> bool: ...

    async def read_state(self, phone_number_id: str, user: str) -> tuple[int, dict[str, Any]]: ...

    def append_step(
        self, phone_number_id: str, user: str, turns: Sequence[Turn]
    ) -> ClaimStep | None: ...

    async def append_turns(
        self, phone_number_id: str, user: str, turns: Sequence[Turn]
    ) -> None: ...

    async def history(self, phone_number_id: str, user: str, limit: int) -> list[Turn]: ...

    async def last_activity(self, phone_number_id: str, user: str) -> Activity | None: ...


PublishCommand = Callable[[SendMessage], Awaitable[None]]
# Mark each new message read before answering it (with "typing..." shown), or not at all.
ReadReceipts = Literal["off", "read", "typing"]
# The timer and its delay: each delay has its own wait queue.
ScheduleTimer = Callable[[TimerScheduled, float], Awaitable[None]]


class StateConflict(RetryLater):
    """Another message of the user was answered first: answer this one again, on fresh state."""


class ResponderTimedOut(RetryLater):
    """The responder did not answer within its deadline: the work is held and done again, its
    claim released meanwhile (a responder still running past the lease could answer twice)."""


class Answering:
    """The steps a message and a reminder both take, over the same ports."""

    def __init__(
        self,
        *,
        conversations: Conversations,
        claims: Claims,
        schedule: ScheduleTimer,
        metrics: ConversationMetrics,
        responder_timeout_seconds: float | None,
        clock: Callable[[], float],
    ) -> None:
        """``responder_timeout_seconds`` must be less than the claims' lease; None: a share of
        it (``RESPONDER_SHARE_OF_LEASE``, as ``ConversationSettings`` does)."""
        lease = claims.lease_seconds
        if responder_timeout_seconds is None:
            responder_timeout_seconds = lease * RESPONDER_SHARE_OF_LEASE
        if responder_timeout_seconds >= lease:
            raise ValueError("the responder's timeout must be less than the claim lease")
        self._conversations = conversations
        self._claims = claims
        self._schedule = schedule
        self._metrics = metrics
        self._responder_timeout = responder_timeout_seconds
        self._clock = clock

    async def claim(self, key: str, step: ClaimStep | None = None) -> Claim | None:
        """The claim when this worker now owns the work; None for a duplicate."""
        claim = await self._claims.claim(key, step=step)
        if claim.state is ClaimState.DONE:
            return None
        if claim.state is ClaimState.BUSY:
            # Another worker is on it, or crashed and its lease has yet to run out.
            raise RetryLater(key)
        return claim

    async def ask(self, asking: Awaitable[Answer], kind: str, about: dict[str, Any]) -> Decided:
        """The responder's answer, cut off at its deadline (``ResponderTimedOut``); ``kind``
        (message, reminder) and ``about`` (its ids) say what it was answering."""
        try:
            async with asyncio.timeout(self._responder_timeout) as deadline:
                answer = await asking
        except TimeoutError:
            if not deadline.expired():
                raise  # the responder's own timeout (a call of its own), not its deadline
            self._metrics.responder_timeouts.labels(kind).inc()
            log.warning(
                "responder did not answer within HIKER_RESPONDER_TIMEOUT_SECONDS; held and "
                "answered again",
                extra={**about, "kind": kind, "timeout_seconds": self._responder_timeout},
            )
            raise ResponderTimedOut(kind) from None
        return decided(answer)

    async def save(self, conversation: Conversation, recorded: Recorded, saved_by: str) -> None:
        """Save the state the responder changed; StateConflict when another got there first."""
        if not conversation.state_changed or recorded.saved_already:
            return
        saved = await self._conversations.save_state(
            conversation.phone_number_id,
            conversation.user,
            read_at_version=recorded.state_version,
            saved_by=saved_by,
            state=conversation.state,
        )
        if not saved:
            self._metrics.state_conflicts.inc()
            raise StateConflict(saved_by)

    def reminders(
        self,
        after_wamid: str,
        pnid: str,
        user: str,
        answer: Decided,
        message_timestamp: int | None,
    ) -> list[Awaitable[None]]:
        """The publishes that set the reminders ``answer`` asked for."""
        scheduled: list[Awaitable[None]] = []
        for remind in answer.reminders:
            timer = start_reminder(
                pnid, user, after_wamid, self._clock(), remind, message_timestamp
            )
            scheduled.append(self.schedule_hop(timer))
            self._metrics.reminders_set.inc()
        return scheduled

    async def schedule_hop(self, timer: TimerScheduled) -> None:
        """Schedule ``timer``'s next hop towards its due time."""
        now = self._clock()
        hop = hop_seconds(timer, now)
        if hop is None:  # due within a second of being set: the shortest rung that covers it
            hop = snap_ms(max(timer.due_at - now, 0.25), to="up") / 1000
        await self._schedule(timer, hop)


def turns(command: SendMessage | None, *, at: float) -> list[Turn]:
    """What ``command`` will say, as outbound turns of the history (receipts say nothing).

    ``at`` is a time a retry computes alike (the message answered, the timer's due time), so
    that a retried message adds the same turns, which the store then skips.
    """
    if command is None:
        return []
    return [
        Turn("out", command.action_key(index), action.type, readable(action), at)
        for index, action in enumerate(command.actions)
        if not isinstance(action, MarkRead)
    ]
