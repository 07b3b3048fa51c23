"""Which dependencies are failing right now, as the consumers found out; readiness and alerts.

A consumer whose handler failed for a dependency's fault (``core.errors.Unavailable``) reports it
here and holds the message; new deliveries wait until the gate opens again. The gate opens when
a held message goes through: that retry is the probe that proves the dependency answers again,
which a ping cannot (a Redis out of memory or demoted to a replica still answers PING).

Logs stay quiet while a dependency is down: one error line when it starts failing, a reminder
with the count every ``remind_seconds``, one line when it recovers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge

from hiker.core.errors import RABBITMQ, REDIS, Unavailable

log = logging.getLogger(__name__)

KNOWN_DEPENDENCIES: Final = (RABBITMQ, REDIS)


class DependencyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.up = Gauge(
            "hiker_dependency_up",
            "1 while the dependency answers the consumers' work, 0 while it is failing.",
            ["dependency"],
            registry=registry,
        )
        self.down = Gauge(
            "hiker_dependency_down",
            "1 while the dependency fails with this error class (what HikerDependencyDown "
            "alerts on), 0 otherwise.",
            ["dependency", "error_class"],
            registry=registry,
        )
        self.failures = Counter(
            "hiker_dependency_failures",
            "Attempts that failed for a dependency's fault; their messages were held, not "
            "poisoned.",
            ["dependency", "error_class"],
            registry=registry,
        )
        self.held = Gauge(
            "hiker_messages_held",
            "Messages held by the consumers until a failing dependency answers again.",
            registry=registry,
        )
        for name in KNOWN_DEPENDENCIES:
            self.up.labels(name).set(1)


class _Outage:
    def __init__(self, error_class: str, now: float) -> None:
        self.error_class = error_class
        self.since = now
        self.failures = 0
        self.reminded_at = now


class DependencyGate:
    """The dependencies failing now; consumers hold their work while any is."""

    def __init__(
        self,
        metrics: DependencyMetrics,
        *,
        remind_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._metrics = metrics
        self._remind_seconds = remind_seconds
        self._clock = clock
        self._outages: dict[str, _Outage] = {}
        self._open = asyncio.Event()
        self._open.set()
        self._held = 0

    def track(self, name: str) -> None:
        """Show ``name`` (a dependency beyond RabbitMQ and Redis, e.g. the api's database) as
        up from the start, so that its series exist before its first failure."""
        if name not in self._outages:
            self._metrics.up.labels(name).set(1)

    def is_open(self) -> bool:
        """No dependency is failing (readiness)."""
        return not self._outages

    async def is_ready(self) -> bool:
        """Readiness probe: false while any dependency is failing the consumers' work."""
        return self.is_open()

    def failing(self) -> dict[str, str]:
        """Dependency → error class of what is failing now."""
        return {name: outage.error_class for name, outage in self._outages.items()}

    async def wait_open(self) -> None:
        """Wait until no dependency is failing."""
        await self._open.wait()

    def report_failure(self, unavailable: Unavailable) -> None:
        now = self._clock()
        name, error_class = unavailable.dependency, unavailable.error_class
        self._metrics.failures.labels(name, error_class).inc()
        outage = self._outages.get(name)
        if outage is None:
            outage = self._outages[name] = _Outage(error_class, now)
            self._open.clear()
            self._metrics.up.labels(name).set(0)
            log.error(
                "%s unavailable (%s): holding messages until it answers again",
                name,
                error_class,
                extra={"dependency": name, "error_class": error_class},
            )
        elif outage.error_class != error_class:
            self._metrics.down.labels(name, outage.error_class).set(0)
            outage.error_class = error_class
        self._metrics.down.labels(name, error_class).set(1)
        outage.failures += 1
        if now - outage.reminded_at >= self._remind_seconds:
            outage.reminded_at = now
            log.warning(
                "%s still unavailable (%s)",
                name,
                error_class,
                extra={
                    "dependency": name,
                    "error_class": error_class,
                    "failures": outage.failures,
                    "held": self._held,
                    "down_seconds": round(now - outage.since, 1),
                },
            )

    def report_recovered(self, name: str) -> None:
        """A held message that had failed on ``name`` went through: it answers again."""
        outage = self._outages.pop(name, None)
        if outage is None:
            return
        self._metrics.up.labels(name).set(1)
        self._metrics.down.labels(name, outage.error_class).set(0)
        log.info(
            "%s available again",
            name,
            extra={
                "dependency": name,
                "error_class": outage.error_class,
                "failures": outage.failures,
                "down_seconds": round(self._clock() - outage.since, 1),
            },
        )
        if not self._outages:
            self._open.set()

    def hold(self) -> None:
        self._held += 1
        self._metrics.held.set(self._held)

    def release(self) -> None:
        self._held -= 1
        self._metrics.held.set(self._held)
