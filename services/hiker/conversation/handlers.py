"""Conversation decisions: what an inbound message, a fired timer or reminder, a status, an error
or a send from the api causes.

Ports (publishing, state, claims, clock) are passed in; the AMQP consumers call these handlers.
Answering a message is here; timers and reminders are ``conversation.fired``'s, and what both
share (the claim, the responder within its deadline, the state saved) ``conversation.answering``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

from hiker.conversation.ai.engine import AITurns, unanswered
from hiker.conversation.answering import (
    Answering,
    Conversations,
    PublishCommand,
    ReadReceipts,
    ResponderTimedOut,
    ScheduleTimer,
    StateConflict,
    turns,
)
from hiker.conversation.fired import FiredTimers
from hiker.conversation.identity import identity_change, is_identity_change
from hiker.conversation.memory import Conversation
from hiker.conversation.metrics import ConversationMetrics
from hiker.conversation.responder import Responder, reminded
from hiker.conversation.routing import ConversationRouting, RoutedOwnership, gives_back
from hiker.conversation.rules import Reply
from hiker.conversation.rulesource import RuleSource
from hiker.conversation.state import Recorded, Turn
from hiker.conversation.timers import start_timer, window_open
from hiker.core.actions import AnyAction, MarkRead, answering
from hiker.core.claims import Claims
from hiker.core.contracts import (
    ControlChanged,
    MessageEchoed,
    MessageReceived,
    MessageSent,
    SendMessage,
    StatusReceived,
    TimerScheduled,
    WebhookErrorReceived,
)
from hiker.core.keys import Keys
from hiker.core.ownership import Ownership
from hiker.core.requests import Handoff

# Where callers found them before timers and reminders moved out.
__all__ = [
    "ConversationHandlers",
    "Conversations",
    "PublishCommand",
    "ReadReceipts",
    "ResponderTimedOut",
    "ScheduleTimer",
    "StateConflict",
]

log = logging.getLogger(__name__)

# The reason a handoff by an echo from the WhatsApp Business app is recorded with.
ECHO_REASON = "business app"


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
        responder_timeout_seconds: float | None = None,
        clock: Callable[[], float] = time.time,
        handoffs: RoutedOwnership | None = None,
        handoff_minutes: float = 30.0,
        ai: AITurns | None = None,
    ) -> None:
        """``responder_timeout_seconds``: how long ``responder`` may take to answer a message
        or a reminder, less than ``claims``' lease (None: two thirds of it, as
        ``ConversationSettings.responder_deadline_seconds``); past it the work is redone.
        ``handoffs``: where a ``Handoff`` a rule or the responder asks for is written (None:
        such a handoff is logged and ignored). ``handoff_minutes``: how long a person owns the
        conversation after answering from the WhatsApp Business app. ``ai``: where a message
        no rule and no handler answered goes (the AI responder; None: nowhere)."""
        self._ai = ai
        self._handoffs = handoffs
        self._handoff_minutes = handoff_minutes
        self._rules = rules
        self._responder = responder
        self._conversations = conversations
        self._keys = keys
        self._send = send
        self._schedule = schedule
        self._metrics = metrics
        self._receipts = read_receipts
        self._clock = clock
        self._turns = _TurnTaking()
        self._steps = Answering(
            conversations=conversations,
            claims=claims,
            schedule=schedule,
            metrics=metrics,
            responder_timeout_seconds=responder_timeout_seconds,
            clock=clock,
        )
        self._fired = FiredTimers(
            rules=rules,
            reminded=reminded(responder),
            conversations=conversations,
            steps=self._steps,
            keys=keys,
            send=send,
            metrics=metrics,
            clock=clock,
        )
        self._routing = ConversationRouting(handoffs, conversations, metrics)

    async def on_message(self, event: MessageReceived) -> None:
        """Answer by the responder, save its state, (re)start the idle timer: once per wamid.

        Messages of one conversation are answered one at a time in this process (a bundle may
        hold several): they would only race on its state. Across replicas the state's
        compare-and-set decides.
        """
        async with self._turns.turn((event.phone_number_id, event.user)):
            await self._on_message(event)

    async def _on_message(self, event: MessageReceived) -> None:
        if is_identity_change(event):
            await self._on_identity_change(event)
            return
        pnid, user = event.phone_number_id, event.user
        turn = Turn("in", event.wamid, event.message_type, event.text, event.received_at)
        # A user kept under their phone number until now comes with a business-scoped id:
        # the conversation moves to it (state, history), atomically with the claim.
        phone = event.wa_id if event.wa_id != user else None
        record = self._conversations.record_step(
            pnid, user, event.wamid, event.received_at, event.timestamp, turn, adopt_from=phone
        )
        key = self._keys.claim(event.phone_number_id, event.user, event.wamid)
        claim = await self._steps.claim(key, record)
        if claim is None:
            self._metrics.duplicates.inc()
            log.info("duplicate message dropped", extra={"wamid": event.wamid})
            return
        try:
            recorded = Recorded.of(claim.step_values)
            now = self._clock()
            if event.standby:
                await self._routing.on_standby(event, recorded.owner, now)
            elif gives_back(event, recorded.owner, now):
                await self._routing.given_back(event, now)
                recorded = replace(recorded, owner=Ownership())
            if event.standby or recorded.owner.human(now):
                # A person (or, for a standby copy, another app) answers: the message is
                # recorded (history, events, the api's copy) and nothing else happens, not
                # even an idle timer (``timers.silenced``).
                await claim.confirm()
                self._metrics.inbound.labels(event.message_type).inc()
                self._metrics.skipped.labels("reply", "human_owned").inc()
                log.info(
                    "message left to the person who owns the conversation",
                    extra={"wamid": event.wamid, "user": user, "type": event.message_type},
                )
                return
            conversation = Conversation(
                pnid,
                user,
                recorded.state,
                self._conversations,
                window_open=window_open(event.timestamp, now),
            )
            answer = await self._steps.ask(
                self._responder.respond(event, conversation),
                "message",
                {"wamid": event.wamid, "user": user},
            )
            await self._steps.save(conversation, recorded, saved_by=event.wamid)
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
            handoff = answer.handing_off
            if recorded.latest and handoff is None:
                # A message older than the recorded one would only start a superseded timer;
                # one handed over would only start a dropped one.
                timeout = self._rules.current.policy(pnid).idle_timeout_seconds
                timer = start_timer(
                    pnid,
                    user,
                    event.wamid,
                    now,
                    timeout,
                    message_timestamp=event.timestamp,
                    wa_id=phone,
                )
                publishes.append(self._schedule(timer, timeout))
            publishes.extend(
                self._steps.reminders(event.wamid, pnid, user, answer, event.timestamp)
            )
            if self._ai is not None and unanswered(answer) and conversation.window_open:
                publishes.append(self._ai.take(event))
            await asyncio.gather(*publishes)
            if handoff is not None:
                # After the reply is published (its text goes out before a person takes over),
                # before the claim is confirmed: a retry from here finds the person owning it
                # and confirms without doing anything again.
                await self._hand_over(pnid, user, handoff, now)
            said = turns(command, at=event.received_at)
            await claim.confirm(step=self._conversations.append_step(pnid, user, said))
        except BaseException:
            await claim.release()
            raise
        self._metrics.inbound.labels(event.message_type).inc()
        if reply is not None:
            self._metrics.replies.labels(reply.rule).inc()
        if recorded.latest and handoff is None:
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

    async def _hand_over(self, pnid: str, user: str, handoff: Handoff, now: float) -> None:
        if self._handoffs is None:
            log.warning("a handoff was asked for but this conversation service cannot write it")
            return
        await self._handoffs.hand_to_person(
            pnid, user, seconds=handoff.minutes * 60, reason=handoff.reason, now=now, way="action"
        )
        self._metrics.handoffs.labels("action").inc()
        log.info(
            "conversation handed to a person",
            extra={"user": user, "minutes": handoff.minutes, "reason": handoff.reason},
        )

    async def _on_identity_change(self, event: MessageReceived) -> None:
        """WhatsApp's notice that the user's ids changed: the conversation moves to the new id
        (state, history; pending timers find it there), once. Never answered, never given to
        the responder, never the user's activity (no timer is reset)."""
        pnid = event.phone_number_id
        change = identity_change(event)
        step = None
        if change is not None:
            step = self._conversations.move_step(pnid, change.previous, change.user)
        claim = await self._steps.claim(self._keys.claim(pnid, event.user, event.wamid), step)
        if claim is None:
            self._metrics.duplicates.inc()
            return
        await claim.confirm()
        self._metrics.inbound.labels(event.message_type).inc()
        log.info(
            "system message recorded",
            extra={
                "wamid": event.wamid,
                "user": event.user,
                "change": change.kind if change is not None else None,
                "moved": step is not None,
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
            # Meta's rule: reply to the phone number when the message carried one.
            wa_id=event.wa_id if event.wa_id != event.user else None,
            actions=tuple(actions),
            keys=tuple(keys),
            kind="reply" if reply is not None else "receipt",
            correlation_id=event.wamid,
            origin_received_at=event.received_at,
        )

    async def on_timer_fired(self, timer: TimerScheduled) -> None:
        """A timer out of its wait queue: the idle follow-up, once per idle period, or a
        reminder (once; another hop when it is not due yet), unless the user wrote since."""
        await self._fired.on_timer_fired(timer)

    async def on_echo(self, event: MessageEchoed) -> None:
        """A person answered from the WhatsApp Business app: the conversation is theirs for
        ``handoff_minutes`` from when the echo came (a redelivery changes nothing), and what
        they wrote joins the history."""
        pnid, user = event.phone_number_id, event.user
        if self._handoffs is not None:
            await self._handoffs.hand_to_person(
                pnid,
                user,
                seconds=self._handoff_minutes * 60,
                reason=ECHO_REASON,
                now=event.received_at,
                lengthen_only=True,
                way="echo",
            )
        turn = Turn("out", event.wamid, event.message_type, event.text, event.received_at)
        await self._conversations.append_turns(pnid, user, [turn])
        self._metrics.handoffs.labels("echo").inc()
        log.info(
            "a person answered from the WhatsApp Business app: conversation handed to them",
            extra={"wamid": event.wamid, "user": user, "minutes": self._handoff_minutes},
        )

    async def on_control(self, event: ControlChanged) -> None:
        """Conversation Routing moved the user's thread (``conversation.routing``)."""
        await self._routing.on_control(event)

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


# Where a handoff is written (``core.ownership.OwnershipStore``).
Handoffs = RoutedOwnership


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
