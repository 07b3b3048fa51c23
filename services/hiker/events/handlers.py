"""What ``hiker events`` decides: stamp each fact into an event once; deliver each event to one
endpoint, then retry, park or be done with it. Storage and HTTP stay behind the ports."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from hiker.core.contracts import MessageReceived, OwnerChanged, SendParked, StatusReceived
from hiker.core.observability import mask_phone
from hiker.events.client import Posted
from hiker.events.delivery import Verdict, decide
from hiker.events.metrics import EventsMetrics, answer_class
from hiker.events.model import (
    BackendEvent,
    Unstamped,
    from_message,
    from_parked,
    from_status,
    owner_changed,
)
from hiker.events.parking import ParkedEvent

log = logging.getLogger(__name__)


class SequencePort(Protocol):
    async def seq_of(self, phone_number_id: str, user: str, event_id: str) -> int: ...


class ForwardPort(Protocol):
    async def forward(self, event: BackendEvent) -> None: ...


class StampHandler:
    """Turns each inbound message, status and parked send into an event with its ``seq``, and
    queues a copy for every endpoint."""

    def __init__(
        self, sequences: SequencePort, outbox: ForwardPort, metrics: EventsMetrics
    ) -> None:
        self._sequences = sequences
        self._outbox = outbox
        self._metrics = metrics
        # The consumer handles many deliveries at once, and Redis calls of different loop
        # turns may overtake each other on different connections: the events of one
        # conversation take their seq one after the other, in the order they were delivered.
        self._turns = _Turns()

    async def on_message(self, message: MessageReceived) -> None:
        await self._stamp(from_message(message))

    async def on_status(self, status: StatusReceived) -> None:
        event = from_status(status)
        if event is None:
            self._metrics.skipped.inc()
            return
        await self._stamp(event)

    async def on_parked(self, parked: SendParked) -> None:
        await self._stamp(from_parked(parked))

    async def on_owner(self, change: OwnerChanged) -> None:
        await self._stamp(
            owner_changed(
                change.phone_number_id,
                change.user,
                change.owner,
                changed_at=change.changed_at,
                until=change.until,
                reason=change.reason,
            )
        )

    async def _stamp(self, event: Unstamped) -> None:
        async with self._turns.of((event.phone_number_id, event.user)):
            seq = await self._sequences.seq_of(event.phone_number_id, event.user, event.id)
        await self._outbox.forward(event.stamped(seq))
        self._metrics.stamped.labels(event.type).inc()


class _Turns:
    """One lock per conversation while someone holds or awaits it; first come, first served
    (``asyncio.Lock`` wakes its waiters in order)."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def of(self, conversation: tuple[str, str]) -> AsyncIterator[None]:
        lock, users = self._locks.get(conversation, (asyncio.Lock(), 0))
        self._locks[conversation] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[conversation]
            if users == 1:
                del self._locks[conversation]
            else:
                self._locks[conversation] = (lock, users - 1)


class PosterPort(Protocol):
    async def post(self, body: bytes, event_id: str) -> Posted: ...


class RetryPort(Protocol):
    async def retry(
        self,
        endpoint: str,
        event: BackendEvent,
        *,
        attempt: int,
        first_attempt_at: float,
        delay_ms: int,
    ) -> None: ...

    async def park(self, event: BackendEvent, why: ParkedEvent) -> None: ...


class DeliveryHandler:
    """Delivers the events of one endpoint's queue to that endpoint (``events.delivery``)."""

    def __init__(
        self,
        endpoint: str,
        poster: PosterPort,
        outbox: RetryPort,
        metrics: EventsMetrics,
        *,
        window_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._endpoint = endpoint
        self._poster = poster
        self._outbox = outbox
        self._metrics = metrics
        self._window = window_seconds
        self._clock = clock

    async def deliver(
        self, event: BackendEvent, *, attempt: int, first_attempt_at: float | None
    ) -> None:
        """POST ``event``; returns once it is delivered, waiting in a retry queue, or parked."""
        started = first_attempt_at if first_attempt_at is not None else self._clock()
        posted = await self._poster.post(event.to_bytes(), event.id)
        answer, name = posted.answer, self._endpoint
        self._metrics.latency.labels(name).observe(posted.seconds)
        self._metrics.answers.labels(name, answer_class(answer.label)).inc()
        decision = decide(
            answer,
            attempt=attempt,
            first_attempt_at=started,
            now=self._clock(),
            window_seconds=self._window,
        )
        if decision.verdict is Verdict.DELIVERED:
            self._metrics.delivered.labels(name).inc()
            return
        if decision.verdict is Verdict.RETRY:
            await self._outbox.retry(
                name,
                event,
                attempt=attempt + 1,
                first_attempt_at=started,
                delay_ms=decision.delay_ms,
            )
            self._metrics.retried.labels(name).inc()
            return
        why = ParkedEvent(name, decision.reason, answer.label, attempt, self._clock())
        await self._outbox.park(event, why)
        self._metrics.parked.labels(name, decision.reason).inc()
        log.warning(
            "event parked",
            extra={
                "endpoint": name,
                "reason": decision.reason,
                "status": answer.label,
                "event_id": event.id,
                "type": event.type,
                "user": mask_phone(event.user),
            },
        )
