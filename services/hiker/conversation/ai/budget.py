"""Daily token budgets of the AI responder, per user and per business number, kept in Redis.

A day is a UTC day; its counters expire on their own a day after it ends. What a turn used is
added once the model answered (``TurnResult.usage``, every call of the turn): tokens a turn
spent and then lost to a crash are spent again by its redo, and counted again, since they were
paid for twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

from hiker.core.keys import Keys
from hiker.core.redis_store import RedisClient

Budget = Literal["user", "number"]

_DAY_SECONDS = 24 * 3600

# KEYS: a counter. ARGV: tokens, expire at (epoch seconds).
_SPEND = """
redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIREAT', KEYS[1], ARGV[2])
return 1
"""


def utc_day(now: float) -> str:
    """``YYYYMMDD`` of ``now`` in UTC: the day a budget is counted for."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y%m%d")


def spent_out(
    user_tokens: int, number_tokens: int, per_user: int | None, per_number: int | None
) -> Budget | None:
    """Which budget is spent (the number's first: it silences everyone), or None."""
    if per_number is not None and number_tokens >= per_number:
        return "number"
    if per_user is not None and user_tokens >= per_user:
        return "user"
    return None


class TokenBudget:
    def __init__(
        self,
        redis: RedisClient,
        keys: Keys,
        *,
        per_user: int | None,
        per_number: int | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``per_user`` / ``per_number``: tokens a day (None: no cap)."""
        self._redis = redis
        self._keys = keys
        self._per_user = per_user
        self._per_number = per_number
        self._clock = clock
        self._spend = redis.register_script(_SPEND)

    @property
    def capped(self) -> bool:
        return self._per_user is not None or self._per_number is not None

    async def spent(self, phone_number_id: str, user: str) -> Budget | None:
        """The budget today's turns have spent already, or None when the model may be called."""
        if not self.capped:
            return None
        day = utc_day(self._clock())
        user_tokens = await self._redis.get(self._keys.ai_tokens_user(phone_number_id, user, day))
        number_tokens = await self._redis.get(self._keys.ai_tokens_number(phone_number_id, day))
        return spent_out(
            int(user_tokens or 0), int(number_tokens or 0), self._per_user, self._per_number
        )

    async def spend(self, phone_number_id: str, user: str, tokens: int) -> None:
        """Count ``tokens`` against today's budgets of the user and of the number."""
        if tokens <= 0 or not self.capped:
            return
        now = self._clock()
        day = utc_day(now)
        # Kept a day past the day's end: a clock a little behind still finds it.
        expire_at = (int(now) // _DAY_SECONDS + 2) * _DAY_SECONDS
        for key in (
            self._keys.ai_tokens_user(phone_number_id, user, day),
            self._keys.ai_tokens_number(phone_number_id, day),
        ):
            await self._spend(keys=[key], args=[tokens, expire_at])
