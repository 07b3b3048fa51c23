"""Send one command: its actions in order, each once per key, paced; then retried or parked.

Action ``i + 1`` of a reply goes only once Graph accepted action ``i``: when one fails, what is
left of the reply (``SendMessage.remainder``) is what waits in a retry queue, or is parked, so
the order holds across retries, parks and replays; a redelivery skips what was already sent (its
claim is done). A read receipt is the exception: it is useful only at once, so one that is
stale or refused is dropped (counted), and the reply after it goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from enum import Enum
from functools import partial
from typing import Protocol

from hiker.core.actions import AnyAction, MarkRead, readable
from hiker.core.claims import Claim, Claims, ClaimState, ClaimStep
from hiker.core.contracts import MessageSent, ParkedHeaders, SendMessage, SendParked
from hiker.core.errors import RetryLater, Unavailable, classify
from hiker.core.keys import Keys
from hiker.sender.graph import GraphCall
from hiker.sender.metrics import SenderMetrics
from hiker.sender.retry import Verdict, decide, retry_delay_ms

log = logging.getLogger(__name__)

# A typing indicator lasts this long, and a receipt means nothing much later: older, dropped.
RECEIPT_USEFUL_SECONDS = 25.0
# How long the bookkeeping after a Graph call pauses, at most, between tries.
_SETTLE_PAUSE_MAX_SECONDS = 2.0
# What a claim holds once a receipt was dropped: done, so a redelivery drops it too.
_DROPPED = b"dropped"


class Graph(Protocol):
    async def send(self, phone_number_id: str, to: str, action: AnyAction) -> GraphCall: ...


class Pacing(Protocol):
    def reserve_step(self, phone_number_id: str, user: str) -> ClaimStep | None: ...

    async def wait(self, reserved_us: int | None) -> None: ...


class Outcomes(Protocol):
    """Where the sender tells what became of its sends (for ``hiker api``'s history)."""

    async def sent(self, event: MessageSent) -> None: ...

    async def parked_event(self, event: SendParked) -> None: ...


ScheduleRetry = Callable[[SendMessage, int, int], Awaitable[None]]  # command, next attempt, ms
Park = Callable[[SendMessage, ParkedHeaders], Awaitable[None]]


class _Next(Enum):
    """What comes after one action."""

    GO_ON = "go_on"  # sent (now or before) or dropped: the next action may go
    STOP = "stop"  # the rest of the reply was handed on (retry, park): this command is done


class SendHandler:
    def __init__(
        self,
        *,
        graph: Graph,
        pacer: Pacing,
        claims: Claims,
        keys: Keys,
        schedule_retry: ScheduleRetry,
        park: Park,
        metrics: SenderMetrics,
        outcomes: Outcomes | None = None,
        max_attempts: int,
        call_deadline_seconds: float,
        max_concurrent_calls: int = 256,
        clock: Callable[[], float] = time.time,
        random_unit: Callable[[], float] = random.random,
    ) -> None:
        self._graph = graph
        self._pacer = pacer
        self._claims = claims
        self._keys = keys
        self._schedule_retry = schedule_retry
        self._park = park
        self._metrics = metrics
        self._outcomes = outcomes
        self._max_attempts = max_attempts
        self._call_deadline = call_deadline_seconds
        self._clock = clock
        self._random = random_unit
        # Graph calls that outlive their consumer (see ``_send``); held so they finish.
        self._settling: set[asyncio.Future[_Next]] = set()
        self._calls = asyncio.Semaphore(max_concurrent_calls)

    async def handle(self, command: SendMessage, attempt: int) -> None:
        """Send ``command``'s actions in order; ``attempt`` is that of its first action."""
        # Bundles bring many commands at once: Graph calls wait their turn here, before the
        # claim, so that no call's deadline runs while it queues for a connection.
        # The outcomes of the actions sent are published meanwhile; the command is done (and
        # acked) only once they are confirmed too.
        told: list[asyncio.Future[None]] = []
        try:
            async with self._calls:
                for index in range(len(command.actions)):
                    tries = attempt if index == 0 else 1
                    if await self._send(command, index, tries, told) is _Next.STOP:
                        return
        finally:
            if told:
                await asyncio.gather(*told)

    async def _send(
        self, command: SendMessage, index: int, attempt: int, told: list[asyncio.Future[None]]
    ) -> _Next:
        action = command.actions[index]
        key = command.action_key(index)
        pnid = command.phone_number_id
        # One round trip claims the send, reserves its pacing slots and, when they are now,
        # marks the Graph call as started. A receipt is no message to the user: no pacing.
        receipt = isinstance(action, MarkRead)
        claim = await self._claims.claim(
            self._keys.sent(pnid, key),
            step=None if receipt else self._pacer.reserve_step(pnid, command.to),
            call_within=self._call_deadline,
        )
        if claim.state is ClaimState.DONE:
            self._metrics.deduplicated.inc()
            log.info("send already done; skipped", extra={"key": key})
            return _Next.GO_ON
        if claim.state is ClaimState.BUSY:
            raise RetryLater(key)
        if claim.state is ClaimState.IN_DOUBT:
            # The key stays marked in doubt until the park is confirmed: a failure here
            # brings this same branch again, never a fresh claim that would send.
            why = await self._park_in_doubt(command, index, attempt)
            await claim.release()
            self._tell(told, claim, self._parked_event(command, index, why))
            return _Next.STOP
        try:
            if receipt and self._stale(command):
                await claim.confirm(_DROPPED)
                self._metrics.receipts.labels("stale").inc()
                return _Next.GO_ON
            if not claim.in_call:
                await self._pacer.wait(claim.step_result)
                await claim.begin_call(self._call_deadline)
        except BaseException:
            await claim.release()  # Graph was not called: the redelivery may send
            raise
        # From here the message may reach Meta. A consumer is cancelled when its channel closes
        # (aiormq does so on a broker restart) and the broker redelivers the command; were the
        # call cancelled and the claim released, that redelivery would send it a second time.
        # So the call and its bookkeeping run to their end in a task of their own.
        settling = asyncio.ensure_future(self._call(command, index, attempt, claim, told))
        self._settling.add(settling)
        settling.add_done_callback(self._settling.discard)
        return await asyncio.shield(settling)

    async def _call(
        self,
        command: SendMessage,
        index: int,
        attempt: int,
        claim: Claim,
        told: list[asyncio.Future[None]],
    ) -> _Next:
        """Call Graph once, then settle the outcome; the claim is never released blindly.

        Once the call has begun, only its known outcome may end the claim: the message recorded
        as sent, or what is left of the reply retried or parked and then the claim released.
        While Redis or the broker refuses that bookkeeping, it is retried here (the outcome is
        known only to this process); if the process dies meanwhile, the call mark stays and
        the redelivery parks the send as in doubt rather than send it again.
        """
        action = command.actions[index]
        call = await self._graph.send(command.phone_number_id, command.to, action)
        outcome = call.outcome
        self._metrics.graph_requests.labels(outcome.status_label, outcome.code_label).inc()
        self._metrics.graph_latency.observe(call.latency_seconds)
        verdict = decide(outcome, attempt, self._max_attempts)
        if verdict is Verdict.SENT:
            value = b"wamid:" + (outcome.message_id or "").encode()
            await self._until_done(lambda: claim.confirm(value), "recording a sent message", claim)
            if not isinstance(action, MarkRead):
                sent = MessageSent(
                    idempotency_key=command.action_key(index),
                    phone_number_id=command.phone_number_id,
                    to=command.to,
                    kind=command.kind,
                    correlation_id=command.correlation_id,
                    action_type=action.type,
                    text=readable(action),
                    graph_message_id=outcome.message_id,
                    sent_at=self._clock(),
                )
                self._tell(told, claim, sent)
        elif isinstance(action, MarkRead):
            # Retrying a receipt would deliver it after it stopped meaning anything.
            await self._until_done(
                lambda: claim.confirm(_DROPPED), "recording a dropped receipt", claim
            )
        elif verdict is Verdict.RETRY:
            delay = retry_delay_ms(attempt, self._random(), outcome.retry_after_seconds)
            rest = command.remainder(index)
            await self._until_done(
                lambda: self._schedule_retry(rest, attempt + 1, delay), "a retry", claim
            )
            await self._until_done(claim.release, "releasing a retried send", claim)
        else:
            parked = ParkedHeaders(
                attempt=attempt,
                reason="permanent" if attempt < self._max_attempts else "retries_exhausted",
                graph_status=outcome.status_label,
                graph_code=outcome.code_label,
                graph_error=call.error,
                parked_at=self._clock(),
            )
            rest = command.remainder(index)
            await self._until_done(lambda: self._park(rest, parked), "a park", claim)
            await self._until_done(claim.release, "releasing a parked send", claim)
            self._tell(told, claim, self._parked_event(command, index, parked))
        self._report(command, index, call, verdict, attempt)
        if verdict is Verdict.SENT or isinstance(action, MarkRead):
            return _Next.GO_ON
        return _Next.STOP

    def _tell(
        self, told: list[asyncio.Future[None]], claim: Claim, event: MessageSent | SendParked
    ) -> None:
        """Publish ``event`` in the background; ``handle`` waits for it before it returns."""
        outcomes = self._outcomes
        if outcomes is None:
            return
        step = (
            partial(outcomes.sent, event)
            if isinstance(event, MessageSent)
            else partial(outcomes.parked_event, event)
        )
        told.append(asyncio.ensure_future(self._until_done(step, "telling an outcome", claim)))

    def _parked_event(self, command: SendMessage, index: int, why: ParkedHeaders) -> SendParked:
        action = command.actions[index]
        return SendParked(
            idempotency_key=command.action_key(index),
            phone_number_id=command.phone_number_id,
            to=command.to,
            kind=command.kind,
            correlation_id=command.correlation_id,
            reason=why.reason,
            graph_status=why.graph_status,
            graph_code=why.graph_code,
            graph_error=why.graph_error,
            parked_at=why.parked_at or self._clock(),
            action_type=action.type,
            text=readable(action),
        )

    def _stale(self, command: SendMessage) -> bool:
        received = command.origin_received_at
        return received is not None and self._clock() - received > RECEIPT_USEFUL_SECONDS

    async def _until_done(
        self, step: Callable[[], Awaitable[None]], what: str, claim: Claim
    ) -> None:
        """Run ``step`` until it succeeds, pausing while a dependency refuses it."""
        pause = 0.05
        failures = 0
        while True:
            try:
                await step()
                return
            except Exception as exc:
                verdict = classify(exc)
                if not isinstance(verdict, Unavailable):
                    raise
                failures += 1
                if failures == 1:  # the consumers' gate reports the outage itself
                    log.warning(
                        "%s failed; retrying until it goes through",
                        what,
                        extra={
                            "key": claim.key,
                            "dependency": verdict.dependency,
                            "error_class": verdict.error_class,
                        },
                    )
            await asyncio.sleep(pause * (0.5 + self._random()))
            pause = min(pause * 2, _SETTLE_PAUSE_MAX_SECONDS)

    async def _park_in_doubt(self, command: SendMessage, index: int, attempt: int) -> ParkedHeaders:
        """A sender died during this action's Graph call: it may or may not have been sent.

        Resending could double the message, dropping it could lose it; a person decides
        (``hiker parked list`` / ``replay``). What is left of the reply waits with it.
        """
        why = ParkedHeaders(
            attempt=attempt,
            reason="in_doubt",
            graph_status="unknown",
            graph_code="unknown",
            parked_at=self._clock(),
        )
        await self._park(command.remainder(index), why)
        self._metrics.parked.labels("unknown").inc()
        log.error(
            "send parked: a previous attempt died during its Graph call (outcome unknown)",
            extra={"key": command.action_key(index), "to": command.to},
        )
        return why

    def _report(
        self, command: SendMessage, index: int, call: GraphCall, verdict: Verdict, attempt: int
    ) -> None:
        outcome = call.outcome
        action = command.actions[index]
        context = {
            "key": command.action_key(index),
            "correlation_id": command.correlation_id,
            "to": command.to,
            "action": action.type,
            "attempt": attempt,
            "status": outcome.status_label,
            "code": outcome.code_label,
        }
        if isinstance(action, MarkRead):
            self._metrics.receipts.labels("sent" if verdict is Verdict.SENT else "failed").inc()
            return
        if verdict is Verdict.SENT:
            self._metrics.sent.labels(command.kind).inc()
            if command.origin_received_at is not None and command.kind == "reply":
                self._metrics.end_to_end.observe(
                    max(0.0, self._clock() - command.origin_received_at)
                )
            log.info("message sent", extra={**context, "graph_message_id": outcome.message_id})
        elif verdict is Verdict.RETRY:
            self._metrics.retries.labels(outcome.code_label).inc()
            log.warning("send failed; will retry", extra=context)
        else:
            self._metrics.parked.labels(outcome.code_label).inc()
            log.error(
                "send parked",
                extra={**context, "graph_error": json.dumps(call.error) if call.error else None},
            )
