"""Send one command: once per idempotency key, paced, then sent, retried later, or parked."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from hiker.core.claims import Claim, Claims, ClaimState, ClaimStep
from hiker.core.contracts import ParkedHeaders, SendMessage
from hiker.core.errors import RetryLater, Unavailable, classify
from hiker.core.redis_store import Keys
from hiker.sender.graph import GraphCall
from hiker.sender.metrics import SenderMetrics
from hiker.sender.retry import Verdict, decide, retry_delay_ms

log = logging.getLogger(__name__)


class Graph(Protocol):
    async def send(self, command: SendMessage) -> GraphCall: ...


class Pacing(Protocol):
    def reserve_step(self, phone_number_id: str) -> ClaimStep | None: ...

    async def wait(self, reserved_us: int | None) -> None: ...


# How long the bookkeeping after a Graph call pauses, at most, between tries.
_SETTLE_PAUSE_MAX_SECONDS = 2.0

ScheduleRetry = Callable[[SendMessage, int, int], Awaitable[None]]  # command, next attempt, ms
Park = Callable[[SendMessage, ParkedHeaders], Awaitable[None]]


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
        self._max_attempts = max_attempts
        self._call_deadline = call_deadline_seconds
        self._clock = clock
        self._random = random_unit
        # Graph calls that outlive their consumer (see ``handle``); held so they finish.
        self._settling: set[asyncio.Future[None]] = set()
        self._calls = asyncio.Semaphore(max_concurrent_calls)

    async def handle(self, command: SendMessage, attempt: int) -> None:
        # Bundles bring many commands at once: Graph calls wait their turn here, before the
        # claim, so that no call's deadline runs while it queues for a connection.
        async with self._calls:
            await self._handle(command, attempt)

    async def _handle(self, command: SendMessage, attempt: int) -> None:
        # One round trip claims the send, reserves its pacing slot and, when the slot is now,
        # marks the Graph call as started.
        claim = await self._claims.claim(
            self._keys.sent(command.phone_number_id, command.idempotency_key),
            step=self._pacer.reserve_step(command.phone_number_id),
            call_within=self._call_deadline,
        )
        if claim.state is ClaimState.DONE:
            self._metrics.deduplicated.inc()
            log.info("send already done; dropped", extra={"key": command.idempotency_key})
            return
        if claim.state is ClaimState.BUSY:
            raise RetryLater(command.idempotency_key)
        if claim.state is ClaimState.IN_DOUBT:
            # The key stays marked in doubt until the park is confirmed: a failure here
            # brings this same branch again, never a fresh claim that would send.
            await self._park_in_doubt(command, attempt)
            await claim.release()
            return
        try:
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
        settling = asyncio.ensure_future(self._call(command, attempt, claim))
        self._settling.add(settling)
        settling.add_done_callback(self._settling.discard)
        await asyncio.shield(settling)

    async def _call(self, command: SendMessage, attempt: int, claim: Claim) -> None:
        """Call Graph once, then settle the outcome; the claim is never released blindly.

        Once the call has begun, only its known outcome may end the claim: the message recorded
        as sent, or its retry or park published and then the claim released. While Redis or
        the broker refuses that bookkeeping, it is retried here (the outcome is known only to
        this process); if the process dies meanwhile, the call mark stays and the redelivery
        parks the send as in doubt rather than send it again.
        """
        call = await self._graph.send(command)
        outcome = call.outcome
        self._metrics.graph_requests.labels(outcome.status_label, outcome.code_label).inc()
        self._metrics.graph_latency.observe(call.latency_seconds)
        verdict = decide(outcome, attempt, self._max_attempts)
        if verdict is Verdict.SENT:
            value = b"wamid:" + (outcome.message_id or "").encode()
            await self._until_done(lambda: claim.confirm(value), "recording a sent message", claim)
        elif verdict is Verdict.RETRY:
            delay = retry_delay_ms(attempt, self._random(), outcome.retry_after_seconds)
            await self._until_done(
                lambda: self._schedule_retry(command, attempt + 1, delay), "a retry", claim
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
            await self._until_done(lambda: self._park(command, parked), "a park", claim)
            await self._until_done(claim.release, "releasing a parked send", claim)
        self._report(command, call, verdict, attempt)

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

    async def _park_in_doubt(self, command: SendMessage, attempt: int) -> None:
        """A sender died during this command's Graph call: it may or may not have been sent.

        Resending could double the message, dropping it could lose it; a person decides
        (``hiker parked list`` / ``replay``).
        """
        why = ParkedHeaders(
            attempt=attempt,
            reason="in_doubt",
            graph_status="unknown",
            graph_code="unknown",
            parked_at=self._clock(),
        )
        await self._park(command, why)
        self._metrics.parked.labels("unknown").inc()
        log.error(
            "send parked: a previous attempt died during its Graph call (outcome unknown)",
            extra={"key": command.idempotency_key, "to": command.to},
        )

    def _report(
        self, command: SendMessage, call: GraphCall, verdict: Verdict, attempt: int
    ) -> None:
        outcome = call.outcome
        context = {
            "key": command.idempotency_key,
            "correlation_id": command.correlation_id,
            "to": command.to,
            "attempt": attempt,
            "status": outcome.status_label,
            "code": outcome.code_label,
        }
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
