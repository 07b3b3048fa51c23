"""The broadcast scheduler: a loop in the api process that, every tick, hands the sender the
recipients each running broadcast may have now (``db.feeding``).

It lives in the api because the broadcasts are the api's rows and the api already publishes to
the sender: a service of its own would add a deployment and a database client for one loop.
Several api replicas are safe (one feeds at a time: an advisory lock), and nothing of it is in
memory: a restarted api goes on from the database.

Its pace is its own: it feeds a number at ``HIKER_BROADCAST_SHARE`` of the rate the sender is
given (``HIKER_SEND_RATE_PER_SECOND``), and never has more than half a second of that in
flight at the sender (handed, Graph's answer not yet recorded). So the sender's queue never
fills with broadcast sends, even when the sender is slower than the rate, and the other part
of the number's rate stays free for replies, which the sender's own pacing (shared by every
send of the number) then serves at once. A bucket of broadcasts' own in the sender's pacing
would not do that: the sends would still queue ahead of replies in the one outbox queue.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Final, Protocol

from hiker.api.db.feeding import Fed, Limits, MessagingLimit, Publish
from hiker.core.errors import Unavailable, classify
from hiker.core.retrying import Backoff

log = logging.getLogger(__name__)

# Unused allowance kept across this many ticks (a slow tick does not lose its share).
BURST_TICKS: Final = 2.0
# Recipients in flight at the sender per number, at most: this many seconds of the
# broadcast's rate (and never fewer than IN_FLIGHT_LEAST). A sender slower than the rate (a
# busy machine) then slows the broadcast, instead of queueing it ahead of replies.
IN_FLIGHT_SECONDS: Final = 0.5
IN_FLIGHT_LEAST: Final = 20


class Feeding(Protocol):
    """One tick in the database (``db.feeding.Feeder``)."""

    async def tick(self, now: float, limits: Limits, publish: Publish) -> Fed: ...


def fixed_limit(limit: int | None) -> MessagingLimit:
    """HIKER_MESSAGING_LIMIT: the same whatever the numbers (None: no limit)."""

    async def limit_of(_: Sequence[str]) -> int | None:
        return limit

    return limit_of


class BroadcastScheduler:
    def __init__(
        self,
        feeder: Feeding,
        publish: Publish,
        *,
        rate_per_second: float,
        tick_seconds: float,
        messaging_limit: MessagingLimit | None = None,
        ready: asyncio.Event | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._feeder = feeder
        self._publish = publish
        # Already the number's share (``ApiSettings.broadcast_rate``).
        self._rate = rate_per_second
        self._tick = tick_seconds
        self._messaging_limit = messaging_limit or fixed_limit(None)
        self._ready = ready
        self._clock = clock
        self._held = False

    async def tick(self) -> Fed:
        """Feed once: what every running broadcast may have now."""
        limits = Limits(
            rate_per_second=self._rate,
            burst_seconds=self._tick * BURST_TICKS,
            messaging_limit=self._messaging_limit,
            max_in_flight=max(IN_FLIGHT_LEAST, round(self._rate * IN_FLIGHT_SECONDS)),
        )
        fed = await self._feeder.tick(self._clock(), limits, self._publish)
        # Four ticks a second: each one's figures at DEBUG, what changes at INFO.
        log.debug(
            "broadcast tick",
            extra={"handed": fed.handed, "skipped": fed.skipped, "ran": fed.ran},
        )
        for broadcast_id in fed.finished:
            log.info("broadcast handed to the sender in full", extra={"broadcast": broadcast_id})
        if fed.ran and fed.held_by_limit != self._held:
            self._held = fed.held_by_limit
            if fed.held_by_limit:
                log.info("broadcasts held: the rolling 24-hour messaging limit is reached")
            else:
                log.info("broadcasts go on: the messaging limit allows more users")
        return fed

    async def run_forever(self) -> None:
        """Tick until cancelled; the database or the broker away pauses it (with backoff),
        never ends it."""
        if self._ready is not None:
            await self._ready.wait()
        backoff = Backoff(first=0.5, most=15.0)
        while True:
            delay = self._tick
            try:
                await self.tick()
                backoff.reset()
            except Exception as exc:
                verdict = classify(exc)
                delay = backoff.next_delay()
                if isinstance(verdict, Unavailable):
                    log.warning(
                        "broadcast tick held: %s unavailable; retrying in %.1fs",
                        verdict.dependency,
                        delay,
                    )
                else:
                    log.error("broadcast tick failed; retrying in %.1fs", delay, exc_info=exc)
            await asyncio.sleep(delay)
