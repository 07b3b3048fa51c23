"""Publishing contracts in bundles: what goes to one place within a short linger leaves as one.

Each caller awaits the broker's confirm of the message that carried its contract, exactly as if
it had published alone (``PublishFailed`` when the broker did not take it), so nothing about
"answer only after the confirm" or "ack only after the downstream confirm" changes. What
changes is the count: a broker and a client pay mostly per AMQP message, and one message for a
linger's worth of contracts costs little more than one alone.

When does a bundle leave? A contract arriving while its destination is quiet (nothing left for
it within the linger) waits only for the end of the current event-loop turn, so that a lone
message pays no linger; once traffic flows, a bundle waits the linger for company. At a few
messages a second nothing waits; at hundreds, each message shares its cost with the others.

Contracts of one destination keep their order: within a bundle, and between bundles (flushed in
order on one channel).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from hiker.core import bundles
from hiker.core.contracts import Contract
from hiker.core.errors import PublishFailed
from hiker.core.topology import HEADER_CORRELATION_ID
from hiker.core.waiters import settle

# Past these a bundle leaves at once: a message stays well under the broker's frame and queue
# limits, and one consumer's share of work stays small enough to spread over replicas.
MAX_ITEMS: Final = 100
MAX_BYTES: Final = 256 * 1024
# Destinations whose last bundle is remembered before the stale ones are swept (see _flush).
_LAST_LEFT_SWEEP: Final = 1024


class Publish(Protocol):
    """``Broker.publish``'s shape, as far as bundling uses it."""

    def __call__(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        type_name: str,
        message_id: str | None = None,
        correlation_id: str | None = None,
        headers: dict[str, Any] | None = None,
        expiration_ms: int | None = None,
        mandatory: bool = True,
    ) -> Awaitable[None]: ...


@dataclass(frozen=True)
class Destination:
    """Where a contract goes: contracts bundle only with others of the same destination."""

    exchange: str
    routing_key: str
    type_name: str
    # Per-message TTL (a timer's delay): part of where it goes, since a bundle has one.
    expiration_ms: int | None = None
    # False for events that may have no taker (see ``Broker.publish``).
    mandatory: bool = True


@dataclass
class _Forming:
    bodies: list[bytes] = field(default_factory=list)
    ids: list[tuple[str | None, str | None]] = field(default_factory=list)
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    size: int = 0
    timer: asyncio.TimerHandle | None = None


class Bundler:
    """Publishes contracts through ``publish``, those of one destination bundled per linger."""

    def __init__(self, publish: Publish, *, linger_seconds: float) -> None:
        self._publish = publish
        self._linger = linger_seconds
        self._forming: dict[Destination, _Forming] = {}
        self._flushing: set[asyncio.Task[None]] = set()
        # When the last bundle of each destination left (loop time).
        self._last_left: dict[Destination, float] = {}
        self._sweep_above = _LAST_LEFT_SWEEP
        # Messages sent and contracts they carried (tests and benchmarks read them).
        self.messages_published = 0
        self.contracts_published = 0

    async def publish(
        self,
        destination: Destination,
        contract: Contract,
        *,
        message_id: str | None = None,
        correlation_id: str | None = None,
    ) -> None:
        """Publish ``contract`` to ``destination``; return once the broker confirmed it."""
        body = contract.to_bytes()
        forming = self._forming.get(destination)
        loop = asyncio.get_running_loop()
        if forming is None:
            forming = self._forming[destination] = _Forming()
            last = self._last_left.get(destination)
            flowing = last is not None and loop.time() - last < self._linger
            forming.timer = loop.call_later(
                self._linger if flowing else 0, self._flush, destination
            )
        waiter: asyncio.Future[None] = loop.create_future()
        forming.bodies.append(body)
        forming.ids.append((message_id, correlation_id))
        forming.waiters.append(waiter)
        forming.size += len(body)
        if len(forming.bodies) >= MAX_ITEMS or forming.size >= MAX_BYTES:
            self._flush(destination)
        await waiter

    async def aclose(self) -> None:
        """Send what is forming now and wait for every bundle under way."""
        for destination in list(self._forming):
            self._flush(destination)
        if self._flushing:
            await asyncio.gather(*self._flushing, return_exceptions=True)

    def _flush(self, destination: Destination) -> None:
        forming = self._forming.pop(destination, None)
        if forming is None:
            return
        if forming.timer is not None:
            forming.timer.cancel()
        loop = asyncio.get_running_loop()
        now = self._last_left[destination] = loop.time()
        if len(self._last_left) > self._sweep_above:
            # A destination quiet for longer than the linger is treated as one never seen, so
            # forgetting it changes nothing; only those active within one linger stay, which
            # keeps the map bounded however many routing keys the payloads ever named. The next
            # sweep waits for the map to double, so sweeping stays O(1) per bundle.
            self._last_left = {
                d: left for d, left in self._last_left.items() if now - left < self._linger
            }
            self._sweep_above = max(_LAST_LEFT_SWEEP, 2 * len(self._last_left))
        task = loop.create_task(self._send(destination, forming))
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _send(self, destination: Destination, forming: _Forming) -> None:
        count = len(forming.bodies)
        headers: dict[str, Any]
        if count == 1:
            message_id, correlation_id = forming.ids[0]
            headers = {HEADER_CORRELATION_ID: correlation_id} if correlation_id else {}
        else:
            message_id, correlation_id = forming.ids[0][0], None
            headers = {bundles.BUNDLE_HEADER: count}
        try:
            await self._publish(
                destination.exchange,
                destination.routing_key,
                bundles.encode(forming.bodies),
                type_name=destination.type_name,
                message_id=message_id,
                correlation_id=correlation_id,
                headers=headers,
                expiration_ms=destination.expiration_ms,
                mandatory=destination.mandatory,
            )
        except BaseException as exc:  # every caller gets it, whatever it is
            _settle(forming.waiters, exc)
            if not isinstance(exc, Exception):
                raise
            return
        self.messages_published += 1
        self.contracts_published += count
        _settle(forming.waiters, None)


def _settle(waiters: list[asyncio.Future[None]], error: BaseException | None) -> None:
    if isinstance(error, asyncio.CancelledError):
        # Shutting down: to the callers this is the broker not taking it, not their own cancel.
        error = PublishFailed("publishing stopped (shutting down)")
    for waiter in waiters:
        settle(waiter, None, error)
