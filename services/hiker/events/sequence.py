"""Redis adapter: the ``seq`` of each event, given once and kept.

One script per event, on the conversation's slot (``Keys.event_seq`` / ``Keys.event_stamp``
share its hash tag): an event id seen before gets the seq it got then (a redelivery after a
crash, or Meta sending the same message twice); a new one gets the conversation's next.

A conversation's counter lives ``COUNTER_TTL_SECONDS`` after its last event. When it is gone
(a first event, or a conversation silent that long) it starts again from the current time in
milliseconds, not from 1: a receiver that kept the last seq it saw never sees a smaller one
for a newer event. After that, seq grows by one per event.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from hiker.core.keys import Keys
from hiker.core.redis_store import RedisClient

COUNTER_TTL_SECONDS: Final = 90 * 24 * 3600
# Longer than Meta redelivers a webhook (7 days) and than a stamp may be redelivered.
STAMP_TTL_SECONDS: Final = 8 * 24 * 3600

_ASSIGN: Final = """
local known = redis.call('GET', KEYS[2])
if known then
  return tonumber(known)
end
local seq
if redis.call('EXISTS', KEYS[1]) == 1 then
  seq = redis.call('INCR', KEYS[1])
else
  seq = tonumber(ARGV[1])
  redis.call('SET', KEYS[1], seq)
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], seq, 'PX', ARGV[3])
return seq
"""


class Sequences:
    """Gives each event of a conversation its ``seq`` (see the module's docstring)."""

    def __init__(
        self, redis: RedisClient, keys: Keys, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._keys = keys
        self._clock = clock
        self._assign = redis.register_script(_ASSIGN)

    async def seq_of(self, phone_number_id: str, user: str, event_id: str) -> int:
        seq = await self._assign(
            keys=[
                self._keys.event_seq(phone_number_id, user),
                self._keys.event_stamp(phone_number_id, user, event_id),
            ],
            args=[
                int(self._clock() * 1000),
                COUNTER_TTL_SECONDS * 1000,
                STAMP_TTL_SECONDS * 1000,
            ],
        )
        return int(seq)
