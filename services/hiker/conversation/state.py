"""Conversation state in Redis: the last inbound message of each (phone number id, user)."""

from __future__ import annotations

from typing import Final

from hiker.conversation.timers import SERVICE_WINDOW_SECONDS, Activity
from hiker.core.claims import ClaimStep
from hiker.core.redis_store import Keys, RedisClient

# What the step that records a message returns (its claim's ``step_result``).
RECORDED_LATEST: Final = 1  # the message is now the conversation's latest
LATER_ALREADY_RECORDED: Final = 0  # a later message of the user came first (out of order)

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


class ConversationStore:
    def __init__(self, redis: RedisClient, keys: Keys, *, idle_timeout_seconds: float) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl_ms = round((max(idle_timeout_seconds * 2, SERVICE_WINDOW_SECONDS) + 3600) * 1000)

    def record_step(
        self, phone_number_id: str, user: str, wamid: str, received_at: float, sent_at: int
    ) -> ClaimStep:
        """The claim step that stores ``wamid`` as the conversation's latest message.

        It returns ``RECORDED_LATEST``, or ``LATER_ALREADY_RECORDED`` when a later one is
        stored already.
        """
        key = self._keys.conversation(phone_number_id, user)
        return ClaimStep(_RECORD, (key,), (wamid, repr(received_at), str(sent_at), self._ttl_ms))

    async def last_activity(self, phone_number_id: str, user: str) -> Activity | None:
        key = self._keys.conversation(phone_number_id, user)
        wamid, received_at = await self._redis.hmget(key, ["last_wamid", "last_received_at"])
        legacy = self._keys.legacy(key)
        if wamid is None and legacy is not None:  # recorded before the upgrade, not since
            wamid, received_at = await self._redis.hmget(legacy, ["last_wamid", "last_received_at"])
        if wamid is None or received_at is None:
            return None
        if isinstance(wamid, bytes):
            wamid = wamid.decode()
        return Activity(last_wamid=wamid, last_received_at=float(received_at))
