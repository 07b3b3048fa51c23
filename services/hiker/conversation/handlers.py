"""Conversation decisions: what an inbound message, a fired timer or reminder, a status, an error
or a send from the api causes.

Ports (publishing, state, claims, clock) are passed in; the AMQP consumers call these handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Literal, Protocol

from hiker.conversation.memory import Conversation, Reminder
from hiker.conversation.metrics import ConversationMetrics
from hiker.conversation.responder import Decided, Responder, decided, reminded
from hiker.conversation.rules import Reply
from hiker.conversation.rulesfile import RuleSource
from hiker.conversation.state import Recorded, Turn
from hiker.conversation.timers import (
    Activity,
    FiredDecision,
    decide_fired,
    hop_seconds,
    start_reminder,
    start_timer,
    superseded,
    window_open,
)
from hiker.core.actions import AnyAction, MarkRead, Template, Text, answering, readable
from hiker.core.claims import Claim, Claims, ClaimState, ClaimStep
from hiker.core.contracts import (
    IdleTimerStarted,
    MessageReceived,
    MessageSent,
    SendMessage,
    StatusReceived,
    WebhookErrorReceived,
)
from hiker.core.delays import snap_ms
from hiker.core.errors import RetryLater
from hiker.core.keys import Keys

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
    ) -> ClaimStep: ...

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
ScheduleTimer = Callable[[IdleTimerStarted, float], Awaitable[None]]


class StateConflict(RetryLater):
    """Another message of the user was answered first: answer this one again, on fresh state."""


class ConversationHandlers:
    def __init__(
        self,
        *,
        rules: RuleSource,
        responder: Responder,
        conversations: Conversations,
        claims: Claims,
        keys: Keys,
        send: PublishCommand,
        schedule: ScheduleTimer,
        metrics: ConversationMetrics,
        read_receipts: ReadReceipts = "off",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._rules = rules
        self._responder = responder
        self._reminded = reminded(responder)
        self._conversations = conversations
        self._claims = claims
        self._keys = keys
        self._send = send
        self._schedule = schedule
        self._metrics = metrics
        self._receipts = read_receipts
        self._clock = clock
        self._turns = _TurnTaking()

    async def on_message(self, event: MessageReceived) -> None:
        """Answer by the responder, save its state, (re)start the idle timer: once per wamid.

        Messages of one conversation are answered one at a time in this process (a bundle may
        hold several): they would only race on its state. Across replicas the state's
        compare-and-set decides.
        """
        async with self._turns.turn((event.phone_number_id, event.user)):
            await self._on_message(event)

    async def _on_message(self, event: MessageReceived) -> None:
        pnid, user = event.phone_number_id, event.user
        turn = Turn("in", event.wamid, event.message_type, event.text, event.received_at)
        record = self._conversations.record_step(
            pnid, user, event.wamid, event.received_at, event.timestamp, turn
        )
        key = self._keys.claim(event.phone_number_id, event.user, event.wamid)
        claim = await self._claim(key, record)
        if claim is None:
            self._metrics.duplicates.inc()
            log.info("duplicate message dropped", extra={"wamid": event.wamid})
            return
        try:
            recorded = Recorded.of(claim.step_values)
            now = self._clock()
            conversation = Conversation(
                pnid,
                user,
                recorded.state,
                self._conversations,
                window_open=window_open(event.timestamp, now),
            )
            answer = decided(await self._responder.respond(event, conversation))
            await self._save(conversation, recorded, saved_by=event.wamid)
            reply = answer.reply
            if reply is not None and not conversation.window_open:
                # Processed a day late (a long outage): a text would fail with 131047.
                self._metrics.skipped.labels("reply", "window_closed").inc()
                reply = None
            # The reply, the timer and the reminders are independent publishes: their confirms
            # are awaited together, so a message costs one broker round trip, not several.
            publishes: list[Awaitable[None]] = []
            command = self._reply_command(event, reply)
            if command is not None:
                publishes.append(self._send(command))
            if recorded.latest:
                # A message older than the recorded one would only start a superseded timer.
                timeout = self._rules.current.policy(pnid).idle_timeout_seconds
                timer = start_timer(
                    pnid, user, event.wamid, now, timeout, message_timestamp=event.timestamp
                )
                publishes.append(self._schedule(timer, timeout))
            publishes.extend(self._reminders(event.wamid, pnid, user, answer, event.timestamp))
            await asyncio.gather(*publishes)
            turns = _turns(command, at=event.received_at)
            await claim.confirm(step=self._conversations.append_step(pnid, user, turns))
        except BaseException:
            await claim.release()
            raise
        self._metrics.inbound.labels(event.message_type).inc()
        if reply is not None:
            self._metrics.replies.labels(reply.rule).inc()
        if recorded.latest:
            self._metrics.timers_scheduled.inc()
        log.info(
            "message processed",
            extra={
                "wamid": event.wamid,
                "user": user,
                "type": event.message_type,
                "rule": reply.rule if reply else None,
            },
        )

    def _reply_command(self, event: MessageReceived, reply: Reply | None) -> SendMessage | None:
        """The read receipt (when configured) and the reply's actions, in that order."""
        actions: list[AnyAction] = []
        keys: list[str] = []
        if self._receipts != "off":
            actions.append(MarkRead(message_id=event.wamid, typing=self._receipts == "typing"))
            keys.append(f"read:{event.wamid}")
        if reply is not None:
            for index, action in enumerate(reply.actions):
                actions.append(answering(action, event.wamid))
                keys.append(f"reply:{event.wamid}" + (f"#{index}" if index else ""))
        if not actions:
            return None
        return SendMessage(
            idempotency_key=f"reply:{event.wamid}",
            phone_number_id=event.phone_number_id,
            to=event.user,
            actions=tuple(actions),
            keys=tuple(keys),
            kind="reply" if reply is not None else "receipt",
            correlation_id=event.wamid,
            origin_received_at=event.received_at,
        )

    def _reminders(
        self,
        after_wamid: str,
        pnid: str,
        user: str,
        answer: Decided,
        message_timestamp: int | None,
    ) -> list[Awaitable[None]]:
        scheduled: list[Awaitable[None]] = []
        for remind in answer.reminders:
            timer = start_reminder(
                pnid, user, after_wamid, self._clock(), remind, message_timestamp
            )
            scheduled.append(self._schedule_hop(timer))
            self._metrics.reminders_set.inc()
        return scheduled

    async def _schedule_hop(self, timer: IdleTimerStarted) -> None:
        now = self._clock()
        hop = hop_seconds(timer, now)
        if hop is None:  # due within a second of being set: the shortest rung that covers it
            hop = snap_ms(max(timer.due_at - now, 0.25), to="up") / 1000
        await self._schedule(timer, hop)

    async def _save(self, conversation: Conversation, recorded: Recorded, saved_by: str) -> None:
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

    async def on_timer_fired(self, timer: IdleTimerStarted) -> None:
        """A timer out of its wait queue: the idle follow-up, once per idle period, or a
        reminder (once; another hop when it is not due yet), unless the user wrote since."""
        now = self._clock()
        activity = await self._conversations.last_activity(timer.phone_number_id, timer.user)
        if superseded(timer, activity):
            self._metrics.timers_fired.inc()
            self._metrics.timers_superseded.inc()
            return
        if hop_seconds(timer, now) is not None:
            await self._schedule_hop(timer)  # a long reminder on its way
            return
        self._metrics.lateness.observe(max(0.0, now - timer.due_at))
        if timer.reminder is not None:
            await self._on_reminder(timer, now)
            return
        policy = self._rules.current.policy(timer.phone_number_id)
        decision = decide_fired(timer, activity, now, policy.followup_template is not None)
        if decision is FiredDecision.SKIP_WINDOW_CLOSED:
            self._metrics.timers_fired.inc()
            self._metrics.skipped.labels("followup", "window_closed").inc()
            log.info(
                "follow-up skipped: service window closed and no template configured",
                extra={"wamid": timer.wamid, "user": timer.user},
            )
            return
        claim = await self._claim(
            self._keys.followup(timer.phone_number_id, timer.user, timer.wamid)
        )
        if claim is None:  # a redelivered copy of a timer that already produced its follow-up
            self._metrics.timers_fired.inc()
            return
        try:
            template = policy.followup_template
            followup: AnyAction = (
                template
                if decision is FiredDecision.FOLLOW_UP_TEMPLATE and template is not None
                else Text(body=policy.followup_text)
            )
            command = SendMessage(
                idempotency_key=f"followup:{timer.wamid}",
                phone_number_id=timer.phone_number_id,
                to=timer.user,
                actions=(followup,),
                kind="followup",
                correlation_id=timer.wamid,
            )
            await self._send(command)
            turns = _turns(command, at=timer.due_at)
            await claim.confirm(
                step=self._conversations.append_step(timer.phone_number_id, timer.user, turns)
            )
        except BaseException:
            await claim.release()
            raise
        self._metrics.timers_fired.inc()
        self._metrics.followups.labels(
            "template" if decision is FiredDecision.FOLLOW_UP_TEMPLATE else "text"
        ).inc()
        log.info("follow-up emitted", extra={"wamid": timer.wamid, "user": timer.user})

    async def _on_reminder(self, timer: IdleTimerStarted, now: float) -> None:
        key = timer.reminder or ""
        self._metrics.timers_fired.inc()
        if self._reminded is None:
            log.warning(
                "a reminder came due but the responder has no on_reminder(); dropped",
                extra={"reminder": key, "user": timer.user},
            )
            return
        pnid, user = timer.phone_number_id, timer.user
        claim = await self._claim(self._keys.reminder(pnid, user, timer.wamid, key))
        if claim is None:
            return
        saved_by = f"remind:{timer.wamid}:{key}"
        try:
            version, state = await self._conversations.read_state(pnid, user)
            conversation = Conversation(
                pnid,
                user,
                state,
                self._conversations,
                window_open=window_open(timer.message_timestamp, now),
            )
            reminder = Reminder(key, dict(timer.data or {}), timer.wamid, timer.due_at)
            answer = decided(await self._reminded.on_reminder(reminder, conversation))
            await self._save(conversation, Recorded(True, version, state, False), saved_by)
            actions = answer.reply.actions if answer.reply is not None else ()
            if not conversation.window_open:
                # Outside the 24-hour window Meta delivers templates only.
                kept = tuple(a for a in actions if isinstance(a, Template))
                if len(kept) < len(actions):
                    self._metrics.skipped.labels("reminder", "window_closed").inc()
                actions = kept
            publishes: list[Awaitable[None]] = []
            command = None
            if actions:
                command = SendMessage(
                    idempotency_key=saved_by,
                    phone_number_id=pnid,
                    to=user,
                    actions=actions,
                    kind="followup",
                    correlation_id=timer.wamid,
                )
                publishes.append(self._send(command))
            publishes.extend(
                self._reminders(timer.wamid, pnid, user, answer, timer.message_timestamp)
            )
            await asyncio.gather(*publishes)
            turns = _turns(command, at=timer.due_at)
            await claim.confirm(step=self._conversations.append_step(pnid, user, turns))
        except BaseException:
            await claim.release()
            raise
        self._metrics.reminders_fired.inc()
        log.info("reminder handled", extra={"reminder": key, "wamid": timer.wamid, "user": user})

    async def on_sent(self, event: MessageSent) -> None:
        """A message sent from outside conversation (``hiker api``) joins the history."""
        turn = Turn("out", event.idempotency_key, event.action_type, event.text, event.sent_at)
        await self._conversations.append_turns(event.phone_number_id, event.to, [turn])

    async def on_status(self, event: StatusReceived) -> None:
        """Count statuses; log failures with Meta's codes. Never touches the idle timer."""
        self._metrics.statuses.labels(event.status).inc()
        for error in event.errors:
            self._metrics.webhook_errors.labels(str(error.code)).inc()
        if event.status == "failed":
            log.warning(
                "message delivery failed",
                extra={
                    "message_id": event.message_id,
                    "recipient_id": event.recipient_id,
                    "codes": [e.code for e in event.errors],
                    "titles": [e.title for e in event.errors],
                },
            )

    async def on_webhook_error(self, event: WebhookErrorReceived) -> None:
        self._metrics.webhook_errors.labels(str(event.code)).inc()
        log.warning(
            "Meta reported an error",
            extra={"code": event.code, "title": event.title, "detail": event.message},
        )

    async def _claim(self, key: str, step: ClaimStep | None = None) -> Claim | None:
        """The claim when this worker now owns the work; None for a duplicate."""
        claim = await self._claims.claim(key, step=step)
        if claim.state is ClaimState.DONE:
            return None
        if claim.state is ClaimState.BUSY:
            # Another worker is on it, or crashed and its lease has yet to run out.
            raise RetryLater(key)
        return claim


class _TurnTaking:
    """One lock per conversation being answered, dropped once nobody waits for it."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._waiting: dict[tuple[str, str], int] = {}

    @contextlib.asynccontextmanager
    async def turn(self, conversation: tuple[str, str]) -> AsyncIterator[None]:
        lock = self._locks.setdefault(conversation, asyncio.Lock())
        self._waiting[conversation] = self._waiting.get(conversation, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._waiting[conversation] -= 1
            if not self._waiting[conversation]:
                del self._waiting[conversation], self._locks[conversation]


def _turns(command: SendMessage | None, *, at: float) -> list[Turn]:
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
