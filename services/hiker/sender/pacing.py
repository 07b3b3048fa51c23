"""Per-phone-number pacing shared by every sender replica, kept in Redis (GCRA).

Each send reserves the next free slot of its phone number (one every 1/rate seconds), in the
same Redis round trip that claims the send, and waits until then. The reservation is atomic in
Redis, on Redis's clock, so N replicas together keep the rate that one would; nothing is lost
when a replica restarts but a few milliseconds of schedule.
"""

from __future__ import annotations

import asyncio

from hiker.core.claims import ClaimStep
from hiker.core.redis_store import Keys

# The body of a claim step (``ClaimStep``): the send's slot is reserved in the same round trip
# that claims the send. Returns the microseconds to wait for the slot (0: now).
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
    def __init__(self, keys: Keys, rate_per_second: float) -> None:
        self._keys = keys
        self._interval_us = round(1_000_000 / rate_per_second) if rate_per_second > 0 else 0

    def reserve_step(self, phone_number_id: str) -> ClaimStep | None:
        """The claim step that reserves this send's slot (it returns the microseconds to wait
        for it: ``claims.GO_NOW`` when it is free now); None when pacing is off."""
        if self._interval_us == 0:
            return None
        return ClaimStep(_RESERVE, (self._keys.pace(phone_number_id),), (self._interval_us,))

    async def wait(self, reserved_us: int | None) -> None:
        """Sleep until the slot that ``reserve_step``'s step returned."""
        if reserved_us:
            await asyncio.sleep(reserved_us / 1_000_000)
