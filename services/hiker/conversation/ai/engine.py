"""The durable AI pipeline: a message no rule and no handler took waits in Redis and sets a turn
due after the debounce (a wait queue of the broker); a due turn that still stands answers every
message waiting in one model call and one reply, once, whatever crashes; a model in trouble
holds the turn and asks again through the broker's backoff, then gives up to a person.

``take`` is called from the inbound handler, ``on_due`` by the AI consumer (its own queue and
prefetch: a model taking seconds never holds up a rules reply). docs/ai.md tells the story.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence

from hiker.conversation.ai.commands import reply_command, typing_command
from hiker.conversation.ai.policy import (
    TYPING_EVERY_SECONDS,
    AIPolicy,
    Due,
    due,
    gives_up,
    retry_seconds,
)
from hiker.conversation.ai.ports import (
    Budgets,
    HandsOver,
    ScheduleReminder,
    ScheduleTurn,
    Waiting,
)
from hiker.conversation.ai.turn import TurnInput, TurnResult, TurnRunner
from hiker.conversation.answering import Conversations, PublishCommand, turns
from hiker.conversation.metrics import ConversationMetrics
from hiker.conversation.responder import Decided
from hiker.conversation.rulesource import RuleSource
from hiker.conversation.state import Turn
from hiker.conversation.timers import start_reminder, window_open
from hiker.core.actions import AnyAction
from hiker.core.ai_model import ModelError, ModelUnavailable
from hiker.core.claims import Claim, Claims, ClaimState
from hiker.core.contracts import AITurnScheduled, MessageReceived
from hiker.core.errors import RetryLater
from hiker.core.keys import Keys
from hiker.core.requests import Handoff

log = logging.getLogger(__name__)

# Why the pipeline itself hands a conversation to a person.
UNAVAILABLE_REASON = "ai unavailable"
OVER_BUDGET_REASON = "ai over budget"


def unanswered(answer: Decided) -> bool:
    """Whether nothing took a message: no reply, reminder or handoff (the model's turn)."""
    return answer.reply is None and not answer.reminders and answer.handing_off is None


class AITurns:
    def __init__(
        self,
        *,
        runner: TurnRunner,
        pending: Waiting,
        budget: Budgets,
        conversations: Conversations,
        claims: Claims,
        keys: Keys,
        rules: RuleSource,
        send: PublishCommand,
        schedule: ScheduleTurn,
        remind: ScheduleReminder,
        handoffs: HandsOver | None,
        metrics: ConversationMetrics,
        policy: AIPolicy,
        system_prompt: Callable[[], str | None] = lambda: None,
        clock: Callable[[], float] = time.time,
        random_unit: Callable[[], float] = random.random,
    ) -> None:
        """``claims`` must lease a turn longer than ``policy.turn_seconds``, its deadline."""
        if claims.lease_seconds <= policy.turn_seconds:
            raise ValueError("an AI turn's claim lease must outlast the turn's deadline")
        self._runner = runner
        self._pending = pending
        self._budget = budget
        self._conversations = conversations
        self._claims = claims
        self._keys = keys
        self._rules = rules
        self._send = send
        self._schedule = schedule
        self._remind = remind
        self._handoffs = handoffs
        self._metrics = metrics
        self._policy = policy
        self._system_prompt = system_prompt
        self._clock = clock
        self._random = random_unit

    async def take(self, message: MessageReceived) -> None:
        """``message`` waits for the model; a turn is set due after the debounce. Kept before
        the turn is published: a turn never comes due before its message waits."""
        await self._pending.add(message)
        turn = AITurnScheduled(
            phone_number_id=message.phone_number_id,
            user=message.user,
            wamid=message.wamid,
            scheduled_at=self._clock(),
            message_timestamp=message.timestamp,
            wa_id=message.wa_id if message.wa_id != message.user else None,
        )
        await self._schedule(turn, self._policy.debounce_seconds)

    async def on_due(self, turn: AITurnScheduled) -> None:
        """A turn out of its wait queue: answered when its message is still the latest one
        waiting (else a later turn answers it, or one did), once across crashes and replicas,
        and one turn of a user at a time (a message sent during a call is answered after it)."""
        pnid, user = turn.phone_number_id, turn.user
        if due(turn.wamid, await self._pending.waiting(pnid, user)) is not Due.ANSWER:
            return  # the usual fate of a burst's earlier messages: settled without a lock
        running = await self._claim(self._keys.ai_running(pnid, user))
        if running is None:  # never confirmed, so never done; a claim store's oddity
            raise RetryLater(self._keys.ai_running(pnid, user))
        try:
            await self._on_due(turn)
        finally:
            await running.release()

    async def _on_due(self, turn: AITurnScheduled) -> None:
        pnid, user = turn.phone_number_id, turn.user
        waiting = await self._pending.waiting(pnid, user)  # anew: a turn may have just ended
        verdict = due(turn.wamid, waiting)
        if verdict is not Due.ANSWER:
            log.debug("AI turn dropped", extra={"wamid": turn.wamid, "why": verdict.value})
            return
        now = self._clock()
        activity = await self._conversations.last_activity(pnid, user)
        if activity is not None and activity.owner_until is not None and now < activity.owner_until:
            # A person owns the conversation: the messages are theirs to answer.
            await self._pending.forget(pnid, user, [m.wamid for m in waiting])
            self._metrics.skipped.labels("reply", "human_owned").inc()
            log.info("AI turn left to the person who owns the conversation", extra={"user": user})
            return
        claim = await self._claim(self._keys.ai_turn(pnid, user, turn.wamid))
        if claim is None:
            return
        try:
            await self._answer(turn, waiting, claim)
        except BaseException:
            await claim.release()
            raise

    async def _claim(self, key: str) -> Claim | None:
        claim = await self._claims.claim(key)
        if claim.state is ClaimState.DONE:
            return None
        if claim.state is ClaimState.BUSY:
            # Another worker runs the turn, or died and its lease has yet to run out.
            raise RetryLater(key)
        return claim

    async def _answer(
        self, turn: AITurnScheduled, waiting: list[MessageReceived], claim: Claim
    ) -> None:
        pnid, user = turn.phone_number_id, turn.user
        spent = await self._budget.spent(pnid, user)
        if spent is not None:
            self._metrics.ai.over_budget.labels(spent).inc()
            log.info("AI turn over its daily token budget", extra={"user": user, "budget": spent})
            if self._policy.over_budget == "handoff":
                handoff = Handoff(minutes=self._policy.handoff_minutes, reason=OVER_BUDGET_REASON)
                await self._finish(turn, waiting, claim, (), "ai_over_budget", handoff=handoff)
            else:
                texts = self._rules.current.ai_over_budget
                await self._finish(turn, waiting, claim, texts, "ai_over_budget")
            return
        asked = TurnInput(self._system_prompt(), await self._history(pnid, user, waiting), waiting)
        first_attempt_at = turn.first_attempt_at or self._clock()
        try:
            result = await self._run(turn, asked)
        except ModelUnavailable as exc:
            if not gives_up(first_attempt_at, self._clock(), self._policy.give_up_seconds):
                await self._retry(turn, first_attempt_at, exc)
                await claim.release()
                return
            log.warning(
                "model unavailable past HIKER_AI_GIVE_UP_SECONDS; handed to a person",
                extra={"user": user, "outcome": exc.outcome, "attempts": turn.attempt + 1},
            )
            await self._give_up(turn, waiting, claim)
            return
        except ModelError as exc:  # rejected, or still too long once trimmed
            log.warning(
                "model refused the turn; handed to a person",
                extra={"user": user, "outcome": exc.outcome, "error": type(exc).__name__},
            )
            await self._give_up(turn, waiting, claim)
            return
        await self._budget.spend(pnid, user, result.usage.total_tokens)
        # Blank text adds nothing; a long one goes in as many messages as Meta's limit needs.
        actions = result.reply_actions()
        await self._finish(
            turn,
            waiting,
            claim,
            tuple(actions),
            "ai",
            handoff=result.handoff,
            result=result,
        )
        self._metrics.ai.debounced.inc(len(waiting) - 1)

    async def _history(
        self, pnid: str, user: str, waiting: Sequence[MessageReceived]
    ) -> list[Turn]:
        """The turns before the new messages, oldest first (the new ones were recorded in
        the history when they came in: they are told apart, after it)."""
        limit = self._policy.history_turns
        if limit <= 0:
            return []
        new = {message.wamid for message in waiting}
        recent = await self._conversations.history(pnid, user, limit + len(new))
        return [past for past in recent if past.id not in new][-limit:]

    async def _run(self, turn: AITurnScheduled, asked: TurnInput) -> TurnResult:
        """The model's answer within the turn's deadline, "typing..." shown meanwhile."""
        await self._show_typing(turn, 0)
        typing = asyncio.create_task(self._keep_typing(turn))
        try:
            async with asyncio.timeout(self._policy.turn_seconds) as deadline:
                return await self._runner.run(asked)
        except TimeoutError:
            # Past the turn's deadline, or a client's own timeout that escaped as it is: both
            # are a model not answering now, held and asked again.
            why = "the turn ran past its deadline" if deadline.expired() else "a call timed out"
            raise ModelUnavailable(why, outcome="timeout") from None
        finally:
            typing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await typing

    async def _keep_typing(self, turn: AITurnScheduled) -> None:
        """Show the typing indicator again every 20 s while the model works: Meta drops it
        after 25 s."""
        shown = 1
        while True:
            await asyncio.sleep(TYPING_EVERY_SECONDS)
            await self._show_typing(turn, shown)
            shown += 1

    async def _show_typing(self, turn: AITurnScheduled, shown: int) -> None:
        """Mark the turn's last message read with the typing indicator. Best effort: a failed
        one leaves the turn alone (the reply's own publish tells of a broker in trouble)."""
        try:
            await self._send(typing_command(turn, shown, self._clock()))
        except Exception:
            log.warning("typing indicator not published", extra={"wamid": turn.wamid})

    async def _retry(
        self, turn: AITurnScheduled, first_attempt_at: float, error: ModelUnavailable
    ) -> None:
        wait = retry_seconds(turn.attempt, error.retry_after, self._random)
        again = turn.model_copy(
            update={"attempt": turn.attempt + 1, "first_attempt_at": first_attempt_at}
        )
        await self._schedule(again, wait)
        log.info(
            "model unavailable; the turn is asked again later",
            extra={
                "user": turn.user,
                "outcome": error.outcome,
                "attempt": turn.attempt + 1,
                "wait_seconds": wait,
                "retry_after": error.retry_after,
            },
        )

    async def _give_up(
        self, turn: AITurnScheduled, waiting: list[MessageReceived], claim: Claim
    ) -> None:
        handoff = Handoff(minutes=self._policy.handoff_minutes, reason=UNAVAILABLE_REASON)
        actions = self._rules.current.ai_unavailable
        await self._finish(turn, waiting, claim, actions, "ai_unavailable", handoff=handoff)

    async def _finish(
        self,
        turn: AITurnScheduled,
        waiting: list[MessageReceived],
        claim: Claim,
        actions: Sequence[AnyAction],
        rule: str,
        *,
        handoff: Handoff | None = None,
        result: TurnResult | None = None,
    ) -> None:
        """Send the turn's one reply, set its reminders, hand over when asked, and confirm the
        claim with the waiting messages answered and the history told what was said."""
        pnid, user = turn.phone_number_id, turn.user
        now = self._clock()
        if actions and not window_open(turn.message_timestamp, now):
            # Answered a day late (a long outage): free-form messages would fail with 131047.
            self._metrics.skipped.labels("reply", "window_closed").inc()
            actions = ()
        command = reply_command(turn, waiting, actions)
        publishes: list[Awaitable[None]] = []
        if command is not None:
            publishes.append(self._send(command))
        for remind in result.reminders if result is not None else ():
            timer = start_reminder(pnid, user, turn.wamid, now, remind, turn.message_timestamp)
            publishes.append(self._remind(timer))
            self._metrics.reminders_set.inc()
        await asyncio.gather(*publishes)
        if handoff is not None:
            await self._hand_over(pnid, user, handoff, now)
        said = turns(command, at=waiting[-1].received_at)
        transcripts = result.transcripts if result is not None else {}
        await claim.confirm(
            step=self._pending.answered_step(pnid, user, waiting, said, transcripts)
        )
        if command is not None:
            self._metrics.replies.labels(rule).inc()
        log.info(
            "AI turn answered",
            extra={"wamid": turn.wamid, "user": user, "rule": rule, "messages": len(waiting)},
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
