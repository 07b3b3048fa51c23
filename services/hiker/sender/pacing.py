"""Per-phone-number pacing shared by every sender replica, kept in Redis (GCRA).

Each send reserves the next free slot of its phone number (one every 1/rate seconds) and waits
until then. The reservation is atomic in Redis, on Redis's clock, so N replicas together keep the
rate that one would; nothing is lost when a replica restarts but a few milliseconds of schedule.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from hiker.core.redis_store import Keys

_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
redis.call('SET', KEYS[1], tat + interval, 'PX', math.floor((tat + interval - now) / 1000) + 1000)
return tat - now
"""


class Pacer:
    def __init__(self, redis: Redis, keys: Keys, rate_per_second: float) -> None:
        self._keys = keys
        self._interval_us = round(1_000_000 / rate_per_second) if rate_per_second > 0 else 0
        self._reserve = redis.register_script(_RESERVE)

    async def wait_turn(self, phone_number_id: str) -> float:
        """Sleep until this send's slot; returns the seconds waited (0 when pacing is off)."""
        if self._interval_us == 0:
            return 0.0
        wait_us = int(
            await self._reserve(keys=[self._keys.pace(phone_number_id)], args=[self._interval_us])
        )
        if wait_us > 0:
            await asyncio.sleep(wait_us / 1_000_000)
        return wait_us / 1_000_000
