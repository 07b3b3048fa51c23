"""Waiting between attempts: one exponential backoff with jitter, and the loop that retries a
start-up step until the dependency it needs answers.

Jitter matters more than the curve: replicas that lost the same dependency at the same moment
must not come back at the same moment, or they knock it over again together.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiormq

from hiker.core.errors import PublishFailed

log = logging.getLogger(__name__)


@dataclass
class Backoff:
    """Delays that double from ``first`` up to ``most``, each drawn from [½, 1½) of its step."""

    first: float
    most: float
    random_unit: Callable[[], float] = field(default=random.random, repr=False)
    attempt: int = 0

    def next_delay(self) -> float:
        """The wait before the next attempt (and one attempt more counted)."""
        step: float = min(self.most, self.first * 2.0**self.attempt)
        self.attempt += 1
        return step * (0.5 + self.random_unit())

    def reset(self) -> None:
        self.attempt = 0


# What the start-up loop retries on: the broker away or refusing, not a bug of ours.
_RECONNECTABLE: tuple[type[BaseException], ...] = (
    PublishFailed,
    ConnectionError,
    TimeoutError,
    OSError,
    aiormq.exceptions.AMQPError,
)


async def keep_trying(
    action: Callable[[], Awaitable[None]],
    what: str,
    *,
    backoff: Backoff | None = None,
    retryable: tuple[type[BaseException], ...] = _RECONNECTABLE,
) -> None:
    """Run ``action`` until it succeeds, backing off; a dependency that is down is not a crash.

    Readiness probes report the wait; the log says what is being waited for, once per attempt.
    What ``retryable`` does not name propagates (a bug, or a mistake an operator must fix).
    """
    backoff = backoff or Backoff(first=0.5, most=10.0)
    while True:
        try:
            await action()
        except aiormq.exceptions.ChannelPreconditionFailed as exc:
            # A queue exists with other arguments: an operator must fix it, retrying alone won't.
            log.error("%s refused the declared topology: %s", what, exc)
        except retryable as exc:
            log.warning("%s unavailable (%s); retrying", what, type(exc).__name__)
        else:
            log.info("%s connected", what)
            return
        await asyncio.sleep(backoff.next_delay())
