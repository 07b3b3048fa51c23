"""Timers out of their wait queue: the idle follow-up, once per idle period, and reminders
handed to the responder's ``on_reminder`` (once; another hop when not due yet), unless the user
wrote since. ``ConversationHandlers.on_timer_fired`` is the way in."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from hiker.conversation.answering import Answering, Conversations, PublishCommand, turns
from hiker.conversation.memory import Conversation, Reminder
from hiker.conversation.metrics import ConversationMetrics
from hiker.conversation.responder import RemindedResponder
from hiker.conversation.rulesource import RuleSource
from hiker.conversation.state import Recorded
from hiker.conversation.timers import (
    FiredDecision,
    decide_fired,
    hop_seconds,
    silenced,
    superseded,
    window_open,
)
from hiker.core.actions import AnyAction, Template, Text
from hiker.core.contracts import SendMessage, TimerScheduled
from hiker.core.identity import is_bsuid
from hiker.core.keys import Keys

log = logging.getLogger(__name__)


class FiredTimers:
    def __init__(
        self,
        *,
        rules: RuleSource,
        reminded: RemindedResponder | None,
        conversations: Conversations,
        steps: Answering,
        keys: Keys,
        send: PublishCommand,
        metrics: ConversationMetrics,
        clock: Callable[[], float],
    ) -> None:
        self._rules = rules
        self._reminded = reminded
        self._conversations = conversations
        self._steps = steps
        self._keys = keys
        self._send = send
        self._metrics = metrics
        self._clock = clock

    async def on_timer_fired(self, timer: TimerScheduled) -> None:
        """A timer out of its wait queue: the idle follow-up, once per idle period, or a
        reminder (once; another hop when it is not due yet), unless the user wrote since."""
        now = self._clock()
        activity = await self._conversations.last_activity(timer.phone_number_id, timer.user)
        # Claimed under the id it was set under, wherever the conversation went since: a
        # copy redelivered after a move must find its work done.
        claimed_as = timer.user
        if activity is not None and activity.moved_to is not None:
            # Set under an id the conversation has moved from since: its follow-up or reminder
            # belongs there (one conversation, one state). Set under the phone number, it is
            # still sent there; under a BSUID that changed (so did the number, maybe), to the
            # new id.
            phone = None if is_bsuid(timer.user) else timer.wa_id or timer.user
            timer = timer.model_copy(update={"user": activity.moved_to, "wa_id": phone})
        if superseded(timer, activity):
            self._metrics.timers_fired.inc()
            self._metrics.timers_superseded.inc()
            return
        if hop_seconds(timer, now) is not None:
            await self._steps.schedule_hop(timer)  # a long reminder on its way
            return
        self._metrics.lateness.observe(max(0.0, now - timer.due_at))
        if silenced(timer, activity, now):
            self._metrics.timers_fired.inc()
            kind = "followup" if timer.reminder is None else "reminder"
            self._metrics.skipped.labels(kind, "human_owned").inc()
            log.info(
                "timer dropped: a person owns or took the conversation",
                extra={"wamid": timer.wamid, "user": timer.user, "reminder": timer.reminder},
            )
            return
        if timer.reminder is not None:
            await self._on_reminder(timer, now, claimed_as)
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
        claim = await self._steps.claim(
            self._keys.followup(timer.phone_number_id, claimed_as, timer.wamid)
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
                wa_id=timer.wa_id,
                actions=(followup,),
                kind="followup",
                correlation_id=timer.wamid,
            )
            await self._send(command)
            said = turns(command, at=timer.due_at)
            await claim.confirm(
                step=self._conversations.append_step(timer.phone_number_id, timer.user, said)
            )
        except BaseException:
            await claim.release()
            raise
        self._metrics.timers_fired.inc()
        self._metrics.followups.labels(
            "template" if decision is FiredDecision.FOLLOW_UP_TEMPLATE else "text"
        ).inc()
        log.info("follow-up emitted", extra={"wamid": timer.wamid, "user": timer.user})

    async def _on_reminder(self, timer: TimerScheduled, now: float, claimed_as: str) -> None:
        key = timer.reminder or ""
        self._metrics.timers_fired.inc()
        if self._reminded is None:
            log.warning(
                "a reminder came due but the responder has no on_reminder(); dropped",
                extra={"reminder": key, "user": timer.user},
            )
            return
        pnid, user = timer.phone_number_id, timer.user
        claim = await self._steps.claim(self._keys.reminder(pnid, claimed_as, timer.wamid, key))
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
            answer = await self._steps.ask(
                self._reminded.on_reminder(reminder, conversation),
                "reminder",
                {"reminder": key, "wamid": timer.wamid, "user": user},
            )
            await self._steps.save(conversation, Recorded(True, version, state, False), saved_by)
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
                self._steps.reminders(timer.wamid, pnid, user, answer, timer.message_timestamp)
            )
            await asyncio.gather(*publishes)
            said = turns(command, at=timer.due_at)
            await claim.confirm(step=self._conversations.append_step(pnid, user, said))
        except BaseException:
            await claim.release()
            raise
        self._metrics.reminders_fired.inc()
        log.info("reminder handled", extra={"reminder": key, "wamid": timer.wamid, "user": user})
