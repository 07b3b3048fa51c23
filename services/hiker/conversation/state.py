"""Conversation state in Redis: the last inbound message of each (phone number id, user)."""

from __future__ import annotations

from redis.asyncio import Redis

from hiker.conversation.timers import Activity
from hiker.core.claims import ClaimStep
from hiker.core.redis_store import Keys

# Record a message as the conversation's latest unless a later one is already recorded, so that
# messages processed out of order (replicas, redeliveries) never move the timer backwards.
_RECORD = """
local current = redis.call('HGET', KEYS[1], 'last_received_at')
if current and tonumber(current) > tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], 'last_wamid', ARGV[1], 'last_received_at', ARGV[2],
           'window_opened_at', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""

# The record outlives the idle timer and the 24 h customer-service window it describes.
_WINDOW_SECONDS = 24 * 3600


class ConversationStore:
    def __init__(self, redis: Redis, keys: Keys, *, idle_timeout_seconds: float) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl_ms = round((max(idle_timeout_seconds * 2, _WINDOW_SECONDS) + 3600) * 1000)

    def record_inbound(
        self, phone_number_id: str, user: str, wamid: str, received_at: float, sent_at: int
    ) -> ClaimStep:
        """Store ``wamid`` as the latest message, as the step of the message's claim.

        The step returns 1 when stored, 0 when a later message is already stored.
        """
        key = self._keys.conversation(phone_number_id, user)
        return ClaimStep(_RECORD, (key,), (wamid, repr(received_at), str(sent_at), self._ttl_ms))

    async def last_activity(self, phone_number_id: str, user: str) -> Activity | None:
        key = self._keys.conversation(phone_number_id, user)
        wamid, received_at = await self._redis.hmget(key, ["last_wamid", "last_received_at"])
        if wamid is None or received_at is None:
            return None
        if isinstance(wamid, bytes):
            wamid = wamid.decode()
        return Activity(last_wamid=wamid, last_received_at=float(received_at))
