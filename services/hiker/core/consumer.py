"""Consuming a queue: each delivery's contracts to their handler, then what becomes of it.

The policy, per delivered message (one contract, or a bundle: ``core.bundles``):
- every contract handled: ack. Acks of one event-loop turn leave together, as one
  ``basic.ack(multiple)`` up to the last contiguous settled delivery tag;
- a dependency in trouble (``core.errors.classify`` says ``Unavailable``): the message is held,
  the failed contracts retried with jittered backoff, the gate (``core.dependencies``) closed so
  that new deliveries wait; never nacked for it, so it never counts towards the poison limit;
- someone else holds the work (``RetryLater``): retried after a pause, nothing else changes;
- the message can never be processed (``Reject``, unreadable) or its handler failed (a bug):
  alone, it is rejected to the poison queue, or nacked to be redelivered until the queue's
  delivery limit poisons it; inside a bundle, that contract is set apart on its own (published
  alone to the same queue) to meet the same fate, while the others go on.
A bundle redelivered after a crash is handled again whole; the handlers' claims turn what was
already done into duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Generic, TypeVar

import aiormq
from aio_pika.abc import AbstractIncomingMessage
from aiormq.abc import AbstractChannel

from hiker.core import bundles
from hiker.core.contracts import Contract
from hiker.core.dependencies import DependencyGate
from hiker.core.errors import Reject, Unavailable, classify
from hiker.core.retrying import Backoff

log = logging.getLogger(__name__)

C = TypeVar("C", bound=Contract)
Headers = Mapping[str, Any]

BACKOFF_FIRST_SECONDS = 0.2
BACKOFF_MAX_SECONDS = 3.0


@dataclass(frozen=True)
class Route(Generic[C]):
    """The contract a message ``type`` carries, and what handles each one of them."""

    contract: type[C]
    handle: Callable[[C, Headers], Awaitable[None]]


Routes = Mapping[str, Route[Any]]
# Publish one body alone to a queue (through the default exchange), awaiting the confirm.
SetApart = Callable[[str, bytes, str, Headers], Awaitable[None]]


class Settle(Enum):
    ACK = "ack"
    REJECT = "reject"  # dead-letter it now (unreadable)
    REQUEUE = "requeue"  # give it back: redelivered, counted by the queue's delivery limit


@dataclass
class _Held:
    contract: Contract
    # The dependency it failed on; None when it waits for someone else's claim.
    dependency: str | None


class QueueConsumer:
    """Handles the deliveries of one queue by ``routes`` (see the module's policy)."""

    def __init__(
        self,
        queue: str,
        routes: Routes,
        *,
        gate: DependencyGate,
        set_apart: SetApart,
        stopping: asyncio.Event,
        random_unit: Callable[[], float] = random.random,
    ) -> None:
        self._queue = queue
        self._routes = routes
        self._gate = gate
        self._set_apart = set_apart
        self._stopping = stopping
        self._random = random_unit
        self._acks: dict[int, _Acks] = {}

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        acks = self._acks_for(message.channel)
        tag = message.delivery_tag or 0
        acks.track(tag)
        try:
            outcome = await self._process(message)
        except BaseException:
            # Cancelled with its channel (closed): the broker gives the message back itself.
            acks.forget(tag)
            raise
        await acks.settle(tag, outcome)

    def _acks_for(self, channel: AbstractChannel) -> _Acks:
        # Tags are per channel: a robust reconnection brings a new channel, tags from 1 again.
        acks = self._acks.get(id(channel))
        if acks is None or acks.channel is not channel:
            self._acks = {k: a for k, a in self._acks.items() if not a.channel.is_closed}
            acks = self._acks[id(channel)] = _Acks(channel)
        return acks

    async def _process(self, message: AbstractIncomingMessage) -> Settle:
        route = self._routes.get(message.type or "")
        if route is None:
            return _poisoned(message, f"unexpected message type {message.type!r}")
        try:
            decoded = bundles.decode(message.body, route.contract)
        except bundles.NotAContract as exc:
            return _poisoned(message, str(exc))
        headers: Headers = message.headers or {}
        alone = not bundles.is_bundle(message.body)
        apart = decoded.invalid
        if apart:
            log.warning(
                "unreadable contracts of a bundle set apart",
                extra={"queue": self._queue, "count": len(apart), "type": message.type},
            )
        if not self._gate.is_open():
            await self._pause(None, waiting_for_gate=True)
        pending = [_Held(item, None) for item in decoded.items]
        backoff: Backoff | None = None  # made on the first failure: most messages have none
        while pending:
            if self._stopping.is_set():
                return Settle.REQUEUE
            errors = await self._handle_all(route, pending, headers)
            held: list[_Held] = []
            for entry, error in zip(pending, errors, strict=True):
                if error is None:
                    if entry.dependency is not None:
                        self._gate.report_recovered(entry.dependency)
                    continue
                verdict = classify(error)
                if isinstance(verdict, Unavailable):
                    self._gate.report_failure(verdict)
                    held.append(_Held(entry.contract, verdict.dependency))
                elif verdict is not None:
                    held.append(_Held(entry.contract, None))
                elif alone:
                    return self._failed_alone(message, error)
                else:
                    self._log_failure(message, error)
                    apart.append(entry.contract.to_bytes())
            pending = held
            if pending:
                waiting_for_gate = any(entry.dependency for entry in pending)
                backoff = backoff or self._backoff()
                await self._pause(backoff.next_delay(), waiting_for_gate)
        return await self._settle_apart(message, apart, headers)

    def _backoff(self) -> Backoff:
        return Backoff(BACKOFF_FIRST_SECONDS, BACKOFF_MAX_SECONDS, self._random)

    async def _handle_all(
        self, route: Route[Any], pending: list[_Held], headers: Headers
    ) -> list[BaseException | None]:
        if len(pending) == 1:
            try:
                await route.handle(pending[0].contract, headers)
            except Exception as exc:
                return [exc]
            return [None]
        outcomes = await asyncio.gather(
            *(route.handle(entry.contract, headers) for entry in pending), return_exceptions=True
        )
        errors: list[BaseException | None] = []
        for outcome in outcomes:
            if isinstance(outcome, asyncio.CancelledError):
                raise outcome
            errors.append(outcome if isinstance(outcome, BaseException) else None)
        return errors

    def _failed_alone(self, message: AbstractIncomingMessage, error: BaseException) -> Settle:
        if isinstance(error, Reject):
            return _poisoned(message, str(error))
        self._log_failure(message, error)
        return Settle.REQUEUE

    def _log_failure(self, message: AbstractIncomingMessage, error: BaseException) -> None:
        if isinstance(error, Reject):
            log.warning(
                "contract rejected",
                extra={"queue": self._queue, "reason": str(error), "id": message.message_id},
            )
            return
        log.error(
            "handler failed",
            exc_info=error,
            extra={"queue": self._queue, "id": message.message_id},
        )

    async def _settle_apart(
        self, message: AbstractIncomingMessage, apart: list[bytes], headers: Headers
    ) -> Settle:
        """Publish each set-apart contract alone to this queue, then ack the bundle."""
        if not apart:
            return Settle.ACK
        own = {k: v for k, v in headers.items() if k not in (bundles.BUNDLE_HEADER, "x-death")}
        backoff = self._backoff()
        while apart:
            if self._stopping.is_set():
                return Settle.REQUEUE
            try:
                await self._set_apart(self._queue, apart[-1], message.type or "", own)
            except Exception as exc:
                verdict = classify(exc)
                if not isinstance(verdict, Unavailable):
                    raise
                self._gate.report_failure(verdict)
                await self._pause(backoff.next_delay(), waiting_for_gate=True)
                continue
            apart.pop()
        return Settle.ACK

    async def _pause(self, seconds: float | None, waiting_for_gate: bool) -> None:
        """Wait ``seconds`` (None: as long as needed), less when the gate opens or we stop."""
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._stopping.wait())]
        if waiting_for_gate:
            waits.append(asyncio.ensure_future(self._gate.wait_open()))
        self._gate.hold()
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._gate.release()
            for waiting in waits:
                waiting.cancel()


def _poisoned(message: AbstractIncomingMessage, reason: str) -> Settle:
    log.warning(
        "message rejected to the poison queue",
        extra={"reason": reason, "message_id": message.message_id},
    )
    return Settle.REJECT


class _Acks:
    """Settlements of one channel. Acks settled in one loop turn go out together: one
    ``multiple`` ack for the contiguous run of the oldest tags, single ones past a gap."""

    def __init__(self, channel: AbstractChannel) -> None:
        self.channel = channel
        # Delivery tag → settled as ack, in delivery order (tags only grow on a channel).
        self._unsettled: dict[int, bool] = {}
        self._gathering = False

    def track(self, tag: int) -> None:
        self._unsettled[tag] = False

    def forget(self, tag: int) -> None:
        self._unsettled.pop(tag, None)

    async def settle(self, tag: int, outcome: Settle) -> None:
        if outcome is not Settle.ACK:
            self._unsettled.pop(tag, None)
            requeue = outcome is Settle.REQUEUE
            await _quietly(self.channel.basic_reject(tag, requeue=requeue, wait=False))
            return
        if tag not in self._unsettled:
            return
        self._unsettled[tag] = True
        if self._gathering:  # the turn's first ack sends this one too
            return
        self._gathering = True
        try:
            await asyncio.sleep(0)
        finally:
            self._gathering = False
        await self._send_acks()

    async def _send_acks(self) -> None:
        if self.channel.is_closed:
            self._unsettled.clear()
            return
        run_end: int | None = None
        while self._unsettled:
            tag = next(iter(self._unsettled))
            if not self._unsettled[tag]:
                break
            del self._unsettled[tag]
            run_end = tag
        singles = [tag for tag, ready in self._unsettled.items() if ready]
        for tag in singles:
            del self._unsettled[tag]
        if run_end is not None:
            await _quietly(self.channel.basic_ack(run_end, multiple=True, wait=False))
        for tag in singles:
            await _quietly(self.channel.basic_ack(tag, wait=False))


async def _quietly(outcome: Awaitable[None]) -> None:
    # When the channel is gone the broker has already requeued the message; nothing to do.
    with contextlib.suppress(aiormq.exceptions.AMQPError, RuntimeError, ConnectionError):
        await outcome
