"""Conversation decisions: what an inbound message, a status, an error or a fired timer causes.

Ports (publishing, state, claims, clock) are passed in; the AMQP consumers call these handlers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from hiker.conversation.metrics import ConversationMetrics
from hiker.conversation.responder import Responder
from hiker.conversation.rulesfile import RuleSource
from hiker.conversation.state import RECORDED_LATEST
from hiker.conversation.timers import (
    Activity,
    FiredDecision,
    decide_fired,
    start_timer,
    window_open,
)
from hiker.core.claims import Claim, Claims, ClaimState, ClaimStep
from hiker.core.contracts import (
    IdleTimerStarted,
    MessageReceived,
    SendMessage,
    StatusReceived,
    WebhookErrorReceived,
)
from hiker.core.errors import RetryLater
from hiker.core.redis_store import Keys

log = logging.getLogger(__name__)


class Conversations(Protocol):
    """What the handlers keep per conversation (``ConversationStore`` in Redis)."""

    def record_step(
        self, phone_number_id: str, user: str, wamid: str, received_at: float, sent_at: int
    ) -> ClaimStep: ...

    async def last_activity(self, phone_number_id: str, user: str) -> Activity | None: ...


PublishCommand = Callable[[SendMessage], Awaitable[None]]
# The timer and its delay: each delay has its own wait queue.
ScheduleTimer = Callable[[IdleTimerStarted, float], Awaitable[None]]


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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._rules = rules
        self._responder = responder
        self._conversations = conversations
        self._claims = claims
        self._keys = keys
        self._send = send
        self._schedule = schedule
        self._metrics = metrics
        self._clock = clock

    async def on_message(self, event: MessageReceived) -> None:
        """Reply by the rules and (re)start the idle timer, once per wamid."""
        record = self._conversations.record_step(
            event.phone_number_id, event.user, event.wamid, event.received_at, event.timestamp
        )
        key = self._keys.claim(event.phone_number_id, event.user, event.wamid)
        claim = await self._claim(key, record)
        if claim is None:
            self._metrics.duplicates.inc()
            log.info("duplicate message dropped", extra={"wamid": event.wamid})
            return
        try:
            # Recorded with the claim; False when a later message of the user is recorded.
            latest = claim.step_result == RECORDED_LATEST
            reply = await self._responder.respond(event)
            if reply is not None and not window_open(event.timestamp, self._clock()):
                # Processed a day late (a long outage): a text would fail with 131047.
                self._metrics.skipped.labels("reply", "window_closed").inc()
                reply = None
            # The reply and the timer are independent publishes: both confirms are awaited
            # together, so a message costs one broker round trip, not two.
            publishes: list[Awaitable[None]] = []
            if reply is not None:
                publishes.append(
                    self._send(
                        SendMessage(
                            idempotency_key=f"reply:{event.wamid}",
                            phone_number_id=event.phone_number_id,
                            to=event.user,
                            text=reply.text,
                            kind="reply",
                            correlation_id=event.wamid,
                            origin_received_at=event.received_at,
                        )
                    )
                )
            if latest:
                # A message older than the recorded one would only start a superseded timer.
                timeout = self._rules.current.policy(event.phone_number_id).idle_timeout_seconds
                timer = start_timer(
                    event.phone_number_id,
                    event.user,
                    event.wamid,
                    self._clock(),
                    timeout,
                    message_timestamp=event.timestamp,
                )
                publishes.append(self._schedule(timer, timeout))
            await asyncio.gather(*publishes)
            await claim.confirm()
        except BaseException:
            await claim.release()
            raise
        self._metrics.inbound.labels(event.message_type).inc()
        if reply is not None:
            self._metrics.replies.labels(reply.rule).inc()
        if latest:
            self._metrics.timers_scheduled.inc()
        log.info(
            "message processed",
            extra={
                "wamid": event.wamid,
                "user": event.user,
                "type": event.message_type,
                "rule": reply.rule if reply else None,
            },
        )

    async def on_timer_fired(self, timer: IdleTimerStarted) -> None:
        """Emit the follow-up once per idle period, unless a newer message superseded the timer."""
        now = self._clock()
        self._metrics.lateness.observe(max(0.0, now - timer.due_at))
        policy = self._rules.current.policy(timer.phone_number_id)
        activity = await self._conversations.last_activity(timer.phone_number_id, timer.user)
        decision = decide_fired(timer, activity, now, policy.followup_template is not None)
        if decision is FiredDecision.SUPERSEDED:
            self._metrics.timers_fired.inc()
            self._metrics.timers_superseded.inc()
            return
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
            if decision is FiredDecision.FOLLOW_UP_TEMPLATE and template is not None:
                content: dict[str, object] = {"template": template}
            else:
                content = {"text": policy.followup_text}
            await self._send(
                SendMessage.model_validate(
                    {
                        "idempotency_key": f"followup:{timer.wamid}",
                        "phone_number_id": timer.phone_number_id,
                        "to": timer.user,
                        "kind": "followup",
                        "correlation_id": timer.wamid,
                        **content,
                    }
                )
            )
            await claim.confirm()
        except BaseException:
            await claim.release()
            raise
        self._metrics.timers_fired.inc()
        self._metrics.followups.labels(
            "template" if decision is FiredDecision.FOLLOW_UP_TEMPLATE else "text"
        ).inc()
        log.info("follow-up emitted", extra={"wamid": timer.wamid, "user": timer.user})

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
