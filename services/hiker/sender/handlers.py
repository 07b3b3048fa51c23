"""Send one command: once per idempotency key, paced, then sent, retried later, or parked."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from hiker.core.broker import TRANSIENT_ERRORS, RetryLater
from hiker.core.claims import Claim, ClaimState, ClaimStep, ClaimStore
from hiker.core.contracts import SendMessage
from hiker.core.redis_store import Keys
from hiker.sender.graph import GraphCall
from hiker.sender.metrics import SenderMetrics
from hiker.sender.retry import Verdict, decide, retry_delay_ms

log = logging.getLogger(__name__)


class Graph(Protocol):
    async def send(self, command: SendMessage) -> GraphCall: ...


class Pacing(Protocol):
    def reserve(self, phone_number_id: str) -> ClaimStep | None: ...

    async def wait(self, reserved_us: int | None) -> None: ...


@dataclass(frozen=True)
class Parked:
    reason: str  # "permanent" or "retries_exhausted"
    http_status: str
    code: str
    error: dict[str, Any] | None


ScheduleRetry = Callable[[SendMessage, int, int], Awaitable[None]]  # command, next attempt, ms
Park = Callable[[SendMessage, int, Parked], Awaitable[None]]


class SendHandler:
    def __init__(
        self,
        *,
        graph: Graph,
        pacer: Pacing,
        claims: ClaimStore,
        keys: Keys,
        schedule_retry: ScheduleRetry,
        park: Park,
        metrics: SenderMetrics,
        max_attempts: int,
        call_deadline_seconds: float,
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

    async def handle(self, command: SendMessage, attempt: int) -> None:
        # One round trip claims the send, reserves its pacing slot and, when the slot is now,
        # marks the Graph call as started.
        claim = await self._claims.claim(
            self._keys.sent(command.idempotency_key),
            step=self._pacer.reserve(command.phone_number_id),
            call_within=self._call_deadline,
        )
        if claim.state is ClaimState.DONE:
            self._metrics.deduplicated.inc()
            log.info("send already done; dropped", extra={"key": command.idempotency_key})
            return
        if claim.state is ClaimState.BUSY:
            raise RetryLater(command.idempotency_key)
        if claim.state is ClaimState.IN_DOUBT:
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
        try:
            call = await self._graph.send(command)
            outcome = call.outcome
            self._metrics.graph_requests.labels(outcome.status_label, outcome.code_label).inc()
            self._metrics.graph_latency.observe(call.latency_seconds)
            verdict = decide(outcome, attempt, self._max_attempts)
            if verdict is Verdict.SENT:
                await self._record_sent(claim, outcome.message_id)
            elif verdict is Verdict.RETRY:
                delay = retry_delay_ms(attempt, self._random(), outcome.retry_after_seconds)
                await self._schedule_retry(command, attempt + 1, delay)
                await claim.release()
            else:
                reason = "permanent" if attempt < self._max_attempts else "retries_exhausted"
                parked = Parked(reason, outcome.status_label, outcome.code_label, call.error)
                await self._park(command, attempt, parked)
                await claim.release()
        except BaseException:
            await claim.release()
            raise
        self._record(command, call, verdict, attempt)

    async def _record_sent(self, claim: Claim, message_id: str | None) -> None:
        """Graph accepted the message: record it, riding out a Redis blip to do so.

        Giving up at once would leave the call mark behind, and the redelivery would park a
        message known to be sent as "in doubt". Only when Redis stays away past the call's
        deadline does the error go up (and the send is then parked, never resent).
        """
        value = b"wamid:" + (message_id or "").encode()
        give_up_at = time.monotonic() + self._call_deadline
        pause = 0.05
        while True:
            try:
                await claim.confirm(value)
                return
            except TRANSIENT_ERRORS as exc:
                if time.monotonic() + pause > give_up_at:
                    raise
                log.warning(
                    "recording a sent message failed; retrying",
                    extra={"key": claim.key, "error": type(exc).__name__},
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)

    async def _park_in_doubt(self, command: SendMessage, attempt: int) -> None:
        """A sender died during this command's Graph call: it may or may not have been sent.

        Resending could double the message, dropping it could lose it; a person decides
        (``hiker parked list`` / ``replay``).
        """
        await self._park(command, attempt, Parked("in_doubt", "unknown", "unknown", None))
        self._metrics.parked.labels("unknown").inc()
        log.error(
            "send parked: a previous attempt died during its Graph call (outcome unknown)",
            extra={"key": command.idempotency_key, "to": command.to},
        )

    def _record(
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
