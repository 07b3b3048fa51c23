"""Claim-then-confirm idempotency in Redis: do a piece of work once, even across crashes.

A worker claims a key with a lease before doing the work and confirms it after. A duplicate finds
the key confirmed and skips. A redelivery whose first attempt crashed finds the lease expired (or
released) and does the work again, so a crash never turns a message into a false duplicate.

Work with an outside effect that cannot be asked about afterwards (a Graph API call) is marked
``calling`` just before it starts. A worker that dies during the call leaves that mark; whoever
finds it after its deadline knows the outcome is in doubt, and must neither redo the call (it may
have succeeded: a doubled message) nor forget it (it may have failed: a lost one).
"""

from __future__ import annotations

import secrets
import time
from enum import Enum

from redis.asyncio import Redis

_DONE = b"done"
_CLAIM = b"claim:"
_CALL = b"call:"

# Change the key only while it still holds what this worker put there: after a lease expiry it
# may belong to someone else.
_COMPARE_AND_SET = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if ARGV[2] == '' then
    return redis.call('DEL', KEYS[1])
  end
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""


class ClaimState(Enum):
    CLAIMED = "claimed"  # the caller owns the work now
    DONE = "done"  # the work was done before: a duplicate
    BUSY = "busy"  # someone else holds a live lease, or is inside an outside call
    IN_DOUBT = "in_doubt"  # the caller owns the work, but a previous outside call never reported


class ClaimLost(Exception):
    """The lease ran out and another worker took the key; this worker must not go on."""


class Claim:
    """One claim attempt on ``key``; ``state`` says what the caller should do."""

    def __init__(self, store: ClaimStore, key: str, value: bytes, state: ClaimState) -> None:
        self._store = store
        self.key = key
        self._value = value
        self.state = state

    async def begin_call(self, within_seconds: float) -> None:
        """Mark the outside call as started; it reports back within ``within_seconds``."""
        deadline_ms = round((time.time() + within_seconds) * 1000)
        value = _CALL + str(deadline_ms).encode() + b":" + self._value[len(_CLAIM) :]
        await self._store.swap(self.key, self._value, value, self._store.done_ttl_ms)
        self._value = value

    async def confirm(self, value: bytes = _DONE) -> None:
        await self._store.confirm(self.key, value)

    async def release(self) -> None:
        await self._store.swap(self.key, self._value, b"", 0, strict=False)


async def is_done(redis: Redis, key: str) -> bool:
    """Whether the work of ``key`` was confirmed (not merely claimed, nor inside a call)."""
    value = await redis.get(key)
    if value is None:
        return False
    raw = value.encode() if isinstance(value, str) else bytes(value)
    return not raw.startswith((_CLAIM, _CALL))


class ClaimStore:
    def __init__(self, redis: Redis, *, lease_seconds: float, done_ttl_seconds: int) -> None:
        self._redis = redis
        self._lease_ms = max(1, round(lease_seconds * 1000))
        self._done_ttl = done_ttl_seconds
        self.done_ttl_ms = done_ttl_seconds * 1000
        self._swap = redis.register_script(_COMPARE_AND_SET)

    async def claim(self, key: str) -> Claim:
        value = _CLAIM + secrets.token_hex(8).encode()
        for _ in range(2):  # once more if the holder's lease ran out between our two calls
            if await self._redis.set(key, value, nx=True, px=self._lease_ms):
                return Claim(self, key, value, ClaimState.CLAIMED)
            current = await self._get(key)
            if current is None:
                continue
            if current.startswith(_CLAIM):
                return Claim(self, key, value, ClaimState.BUSY)
            if current.startswith(_CALL):
                deadline_ms = int(current[len(_CALL) :].split(b":", 1)[0])
                if time.time() * 1000 < deadline_ms:
                    return Claim(self, key, value, ClaimState.BUSY)
                # The caller died inside the call. Take the key over to settle it, once.
                if await self._swap(keys=[key], args=[current, value, self._lease_ms]):
                    return Claim(self, key, value, ClaimState.IN_DOUBT)
                continue
            return Claim(self, key, value, ClaimState.DONE)
        return Claim(self, key, value, ClaimState.BUSY)

    async def _get(self, key: str) -> bytes | None:
        value = await self._redis.get(key)
        return value.encode() if isinstance(value, str) else value

    async def confirm(self, key: str, value: bytes = _DONE) -> None:
        """Mark ``key`` done (``value`` may record a result, e.g. Graph's message id)."""
        await self._redis.set(key, value, ex=self._done_ttl)

    async def swap(
        self, key: str, expected: bytes, new: bytes, ttl_ms: int, *, strict: bool = True
    ) -> None:
        """Replace ``expected`` by ``new`` (delete when empty); ClaimLost if ``strict`` fails."""
        changed = await self._swap(keys=[key], args=[expected, new, ttl_ms])
        if strict and not changed:
            raise ClaimLost(key)
