"""Send one command: its actions in order, each once per key, paced; then retried or parked.

Action ``i + 1`` of a reply goes only once Graph accepted action ``i``: when one fails, what is
left of the reply (``SendMessage.remainder``) is what waits in a retry queue, or is parked, so
the order holds across retries, parks and replays; a redelivery skips what was already sent (its
claim is done). A read receipt is the exception: it is useful only at once, so one that is
stale or refused is dropped (counted), and the reply after it goes on.

A send waits for its pacing slot (``sender.pacing``) holding its claim only while the wait is
short (``max_hold_seconds``, well under the claim's lease): a slot further out would outlive
the lease, and the redelivery would reserve another slot further out still. Such a send is
deferred instead: what is left of the reply goes back through the retry queues (the same
attempt: no failure happened) carrying the slot it reserved, and its claim is released. The
delay is rounded *down* onto the ladder and the slot checked again on return (on Redis's
clock): a send back early waits the short rest, or is deferred once more with the same slot,
never sent before it; rounding up instead would send up to a rung (~19 %) late, and delays
past the ladder's top (15 minutes) would come back early anyway. Keeping the slot means a send
is counted against the rates once, and keeps its place in its user's order.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from enum import Enum
from functools import partial
from typing import Protocol

from hiker.core.actions import AnyAction, MarkRead
from hiker.core.claims import Claim, Claims, ClaimState
from hiker.core.contracts import MessageSent, SendMessage, SendParked
from hiker.core.delays import snap_ms
from hiker.core.errors import RetryLater, Unavailable, classify
from hiker.core.keys import Keys
from hiker.core.parked_headers import ParkedHeaders
from hiker.core.retrying import Backoff
from hiker.sender.graph import GraphCall
from hiker.sender.metrics import SenderMetrics
from hiker.sender.pacing import Paced
from hiker.sender.reporting import parked_event, report, sent_event
from hiker.sender.retry import (
    MAX_DELAY_SECONDS,
    Verdict,
    decide,
    park_reason,
    retry_delay_ms,
)

log = logging.getLogger(__name__)

# Sends Meta wants at its Marketing Messages endpoint (``GraphClient.send``).
MARKETING_KIND = "marketing"
# A typing indicator lasts this long, and a receipt means nothing much later: older, dropped.
RECEIPT_USEFUL_SECONDS = 25.0
# How long the bookkeeping after a Graph call pauses between tries: first, and at most.
_SETTLE_PAUSE_FIRST_SECONDS = 0.05
_SETTLE_PAUSE_MAX_SECONDS = 2.0
# What a claim holds once a receipt was dropped: done, so a redelivery drops it too.
_DROPPED = b"dropped"
# The longest wait for a pacing slot with the claim in hand (the sender's lease is the Graph
# timeout plus 5 s): a slot further out is waited for in a delay queue.
DEFAULT_MAX_HOLD_SECONDS = 2.0


class Graph(Protocol):
    async def send(
        self,
        phone_number_id: str,
        to: str,
        action: AnyAction,
        *,
        callback_data: str | None = None,
        marketing: bool = False,
    ) -> GraphCall: ...


class Pacing(Protocol):
    """A send's claim and its pacing slots, taken together (``Pacer``: one Redis round trip)."""

    async def claim(
        self,
        claims: Claims,
        key: str,
        phone_number_id: str,
        user: str,
        *,
        reserved_us: int | None = None,
        call_within: float | None = None,
    ) -> Paced: ...

    async def wait(self, reserved_us: int | None) -> None: ...


class Outcomes(Protocol):
    """Where the sender tells what became of its sends (for ``hiker api``'s history)."""

    async def sent(self, event: MessageSent) -> None: ...

    async def parked_event(self, event: SendParked) -> None: ...


class ScheduleRetry(Protocol):
    """``command`` comes back as ``attempt`` after ``delay_ms``; ``paced_until_us``: the pacing
    slot it reserved already (``Pacer.claim``)."""

    def __call__(
        self,
        command: SendMessage,
        attempt: int,
        delay_ms: int,
        *,
        paced_until_us: int | None = None,
    ) -> Awaitable[None]: ...


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
        max_hold_seconds: float = DEFAULT_MAX_HOLD_SECONDS,
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
        if max_hold_seconds * 1000 < snap_ms(0):
            raise ValueError("max_hold_seconds is shorter than the shortest delay queue")
        self._max_hold_us = round(max_hold_seconds * 1_000_000)
        self._clock = clock
        self._random = random_unit
        # Graph calls that outlive their consumer (see ``_send``); held so they finish.
        self._settling: set[asyncio.Future[_Next]] = set()
        self._calls = asyncio.Semaphore(max_concurrent_calls)

    async def handle(
        self, command: SendMessage, attempt: int, *, paced_until_us: int | None = None
    ) -> None:
        """Send ``command``'s actions in order; ``attempt`` is that of its first action, and
        ``paced_until_us`` the pacing slot it reserved before it was deferred (see the module)."""
        # Bundles bring many commands at once: Graph calls wait their turn here, before the
        # claim, so that no call's deadline runs while it queues for a connection.
        # The outcomes of the actions sent are published meanwhile; the command is done (and
        # acked) only once they are confirmed too.
        told: list[asyncio.Future[None]] = []
        try:
            async with self._calls:
                for index in range(len(command.actions)):
                    tries, slot = (attempt, paced_until_us) if index == 0 else (1, None)
                    if await self._send(command, index, tries, slot, told) is _Next.STOP:
                        return
        finally:
            if told:
                await asyncio.gather(*told)

    async def _send(
        self,
        command: SendMessage,
        index: int,
        attempt: int,
        slot_us: int | None,
        told: list[asyncio.Future[None]],
    ) -> _Next:
        action = command.actions[index]
        key = command.action_key(index)
        pnid = command.phone_number_id
        # One round trip claims the send, reserves its pacing slots (or checks the one it
        # reserved before) and, when they are now, marks the Graph call as started. A receipt
        # is no message to the user: no pacing.
        receipt = isinstance(action, MarkRead)
        sent_key = self._keys.sent(pnid, key)
        taken = (
            Paced(await self._claims.claim(sent_key, call_within=self._call_deadline))
            if receipt
            else await self._pacer.claim(
                self._claims,
                sent_key,
                pnid,
                command.to,
                reserved_us=slot_us,
                call_within=self._call_deadline,
            )
        )
        claim = taken.claim
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
            self._tell(told, claim, parked_event(command, index, why, self._clock()))
            return _Next.STOP
        try:
            if receipt and self._stale(command):
                await claim.confirm(_DROPPED)
                self._metrics.receipts.labels("stale").inc()
                return _Next.GO_ON
            if not claim.in_call:
                if taken.wait_us > self._max_hold_us and taken.slot_us is not None:
                    await self._defer(command, index, attempt, taken.slot_us, taken.wait_us)
                    await claim.release()
                    return _Next.STOP
                await self._pacer.wait(taken.wait_us)
                await claim.begin_call(self._call_deadline)
        except BaseException:
            # Graph was not called: the redelivery may send. A lease run out before the call
            # began (an event loop stalled past it) is ClaimLost: busy, tried again shortly.
            await claim.release()
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
        # The action's own key rides along: Meta returns it on every status of the message, so
        # a status joins its send even before this call's answer is recorded.
        call = await self._graph.send(
            command.phone_number_id,
            command.address,
            action,
            callback_data=command.action_key(index),
            marketing=command.kind == MARKETING_KIND,
        )
        outcome = call.outcome
        self._metrics.graph_requests.labels(outcome.status_label, outcome.code_label).inc()
        self._metrics.graph_latency.observe(call.latency_seconds)
        verdict = decide(outcome, attempt, self._max_attempts)
        if verdict is Verdict.SENT:
            value = b"wamid:" + (outcome.message_id or "").encode()
            await self._until_done(lambda: claim.confirm(value), "recording a sent message", claim)
            if not isinstance(action, MarkRead):
                sent = sent_event(command, index, outcome.message_id, self._clock())
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
                reason=park_reason(outcome, attempt, self._max_attempts),
                graph_status=outcome.status_label,
                graph_code=outcome.code_label,
                graph_error=call.error,
                parked_at=self._clock(),
            )
            rest = command.remainder(index)
            await self._until_done(lambda: self._park(rest, parked), "a park", claim)
            await self._until_done(claim.release, "releasing a parked send", claim)
            self._tell(told, claim, parked_event(command, index, parked, self._clock()))
        report(self._metrics, command, index, call, verdict, attempt, self._clock())
        if verdict is Verdict.SENT or isinstance(action, MarkRead):
            return _Next.GO_ON
        return _Next.STOP

    async def _defer(
        self, command: SendMessage, index: int, attempt: int, slot_us: int, wait_us: int
    ) -> None:
        """What is left of the reply waits for ``slot_us`` in a delay queue, not in hand."""
        delay_ms = snap_ms(min(wait_us / 1_000_000, MAX_DELAY_SECONDS), to="down")
        await self._schedule_retry(
            command.remainder(index), attempt, delay_ms, paced_until_us=slot_us
        )
        self._metrics.deferred.inc()
        log.info(
            "send deferred until its pacing slot",
            extra={"key": command.action_key(index), "to": command.to, "delay_ms": delay_ms},
        )

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

    def _stale(self, command: SendMessage) -> bool:
        received = command.origin_received_at
        return received is not None and self._clock() - received > RECEIPT_USEFUL_SECONDS

    async def _until_done(
        self, step: Callable[[], Awaitable[None]], what: str, claim: Claim
    ) -> None:
        """Run ``step`` until it succeeds, pausing while a dependency refuses it."""
        backoff = Backoff(_SETTLE_PAUSE_FIRST_SECONDS, _SETTLE_PAUSE_MAX_SECONDS, self._random)
        while True:
            try:
                await step()
                return
            except Exception as exc:
                verdict = classify(exc)
                if not isinstance(verdict, Unavailable):
                    raise
                if backoff.attempt == 0:  # the consumers' gate reports the outage itself
                    log.warning(
                        "%s failed; retrying until it goes through",
                        what,
                        extra={
                            "key": claim.key,
                            "dependency": verdict.dependency,
                            "error_class": verdict.error_class,
                        },
                    )
            await asyncio.sleep(backoff.next_delay())

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
