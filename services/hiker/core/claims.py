"""Claim-then-confirm idempotency in Redis: do a piece of work once, even across crashes.

A worker claims a key with a lease before doing the work and confirms it after. A duplicate finds
the key confirmed and skips. A redelivery whose first attempt crashed finds the lease expired (or
released) and does the work again, so a crash never turns a message into a false duplicate.
"""

from __future__ import annotations

import secrets
from enum import Enum

from redis.asyncio import Redis

_DONE = b"done"

# Delete the claim only if it is still ours: after a lease expiry it may belong to someone else.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class ClaimState(Enum):
    CLAIMED = "claimed"  # the caller owns the work now
    DONE = "done"  # the work was done before: a duplicate
    BUSY = "busy"  # someone else holds a live lease


class Claim:
    """One claim attempt on ``key``; ``state`` says what the caller should do."""

    def __init__(self, store: ClaimStore, key: str, token: bytes, state: ClaimState) -> None:
        self._store = store
        self.key = key
        self.token = token
        self.state = state

    async def confirm(self, value: bytes = _DONE) -> None:
        await self._store.confirm(self.key, value)

    async def release(self) -> None:
        await self._store.release(self.key, self.token)


class ClaimStore:
    def __init__(self, redis: Redis, *, lease_seconds: float, done_ttl_seconds: int) -> None:
        self._redis = redis
        self._lease_ms = max(1, round(lease_seconds * 1000))
        self._done_ttl = done_ttl_seconds
        self._release = redis.register_script(_RELEASE)

    async def claim(self, key: str) -> Claim:
        token = b"claim:" + secrets.token_hex(8).encode()
        if await self._redis.set(key, token, nx=True, px=self._lease_ms):
            return Claim(self, key, token, ClaimState.CLAIMED)
        current = await self._get(key)
        if current is None:  # the lease ran out between the two calls; try once more
            if await self._redis.set(key, token, nx=True, px=self._lease_ms):
                return Claim(self, key, token, ClaimState.CLAIMED)
            current = await self._get(key)
        if current is not None and not current.startswith(b"claim:"):
            return Claim(self, key, token, ClaimState.DONE)
        return Claim(self, key, token, ClaimState.BUSY)

    async def _get(self, key: str) -> bytes | None:
        value = await self._redis.get(key)
        return value.encode() if isinstance(value, str) else value

    async def confirm(self, key: str, value: bytes = _DONE) -> None:
        """Mark ``key`` done (``value`` may record a result, e.g. Graph's message id)."""
        await self._redis.set(key, value, ex=self._done_ttl)

    async def release(self, key: str, token: bytes) -> None:
        await self._release(keys=[key], args=[token])
