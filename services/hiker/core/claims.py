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

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import partial
from typing import Any, Final, Protocol

from redis.commands.core import AsyncScript

from hiker.core.claim_marks import (
    CALL_PREFIX,
    CLAIM_PREFIX,
    DONE,
    DOUBT_PREFIX,
    call_value,
    doubt_value,
    lease_value,
    mark_deadline_ms,
)
from hiker.core.errors import RetryLater
from hiker.core.keys import LegacyName
from hiker.core.redis_store import RedisClient

log = logging.getLogger(__name__)

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


# Take the claim and, only when taken, run a step atomically with it: one round trip where a
# claim followed by the step's own command would take two (at thousands of messages a second,
# each round trip is a tenth of a message's CPU). A claim not taken returns what holds the key.
# KEYS[1] is the claim, KEYS[2..n+1] the step's keys; ARGV: lease value, lease ms, call value
# ('' for none), call ttl ms, n. The step sees KEYS[2..n+1] and ARGV[6..] as its own KEYS and
# ARGV. When a call value is given and the step returns GO_NOW, the claim enters the call at
# once. Any KEYS past n+1 come in pairs (old name, name): a key still under the name it had
# before hash tags is renamed first, so that the claim and its step find what it held.
_CLAIM_WITH_STEP = """
local function step(KEYS, ARGV)
__STEP__
end
local n = tonumber(ARGV[5])
for i = n + 2, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    redis.call('RENAMENX', KEYS[i], KEYS[i + 1])
  end
end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {0, redis.call('GET', KEYS[1])}
end
local result = step({unpack(KEYS, 2, n + 1)}, {unpack(ARGV, 6)})
if ARGV[3] ~= '' and result == __GO_NOW__ then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
  return {2, result}
end
return {1, result}
"""


# Mark the claim done and run a step with it. KEYS[1] is the claim; ARGV: done value, ttl
# seconds; the step sees KEYS[2..] and ARGV[3..].
_CONFIRM_WITH_STEP = """
local function step(KEYS, ARGV)
__STEP__
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return step({unpack(KEYS, 2)}, {unpack(ARGV, 3)})
"""


# What a step returns when the outside call may begin at once (e.g. no pacing wait).
GO_NOW: Final = 0


@dataclass(frozen=True)
class ClaimStep:
    """Redis work done atomically with taking a claim, and only when the claim is taken.

    ``lua`` is the body of a Lua function of ``(KEYS, ARGV)``, which are ``keys`` and ``args``
    here, returning an integer (the claim's ``step_result``) or a list whose first item is that
    integer (the whole list: ``step_values``, byte strings decoded).
    """

    lua: str
    keys: tuple[str, ...] = ()
    args: tuple[str | int, ...] = ()
    # (old name, name) pairs, flattened: keys renamed to ``name`` (RENAMENX, only while
    # ``name`` does not exist) before the claim is taken, as keys under their names from before
    # hash tags are; e.g. a conversation kept under a user's phone number that now comes with
    # a business-scoped user id (``Keys.adoptions``).
    adopt: tuple[str, ...] = ()


_NO_STEP = ClaimStep(f"return {GO_NOW}")


class ClaimState(Enum):
    CLAIMED = "claimed"  # the caller owns the work now
    DONE = "done"  # the work was done before: a duplicate
    BUSY = "busy"  # someone else holds a live lease, or is inside an outside call
    IN_DOUBT = "in_doubt"  # a previous outside call never reported: settle it, do not redo it


class ClaimLost(RetryLater):
    """The lease ran out (another worker may hold the key now): this worker must not go on.

    Busy, not a bug: the message is tried again shortly, and finds the work done, in someone
    else's hands, or free again."""


class ClaimKeeper(Protocol):
    """What a ``Claim`` asks of the store that issued it."""

    done_ttl_ms: int

    def now(self) -> float: ...

    async def swap(
        self, key: str, expected: bytes, new: bytes, ttl_ms: int, *, strict: bool = True
    ) -> None: ...

    async def confirm(
        self, key: str, value: bytes = ..., *, step: ClaimStep | None = None
    ) -> None: ...


class Claim:
    """One claim attempt on ``key``; ``state`` says what the caller should do."""

    def __init__(
        self,
        store: ClaimKeeper,
        key: str,
        value: bytes,
        state: ClaimState,
        *,
        step_result: int | None = None,
        step_values: tuple[int | str | None, ...] = (),
        in_call: bool = False,
    ) -> None:
        self._store = store
        self.key = key
        self._value = value
        self.state = state
        # What the claim's step returned; None when no step ran (the claim was not taken).
        self.step_result = step_result
        self.step_values = step_values
        # The outside call is already marked as started (``claim(call_within=...)``).
        self.in_call = in_call

    async def begin_call(self, within_seconds: float) -> None:
        """Mark the outside call as started; it reports back within ``within_seconds``."""
        value = call_value(within_seconds, self._value, self._store.now())
        await self._store.swap(self.key, self._value, value, self._store.done_ttl_ms)
        self._value = value
        self.in_call = True

    async def confirm(self, value: bytes = DONE, *, step: ClaimStep | None = None) -> None:
        """Mark the work done; ``step`` (Redis work of its own) runs in the same round trip."""
        await self._store.confirm(self.key, value, step=step)

    async def release(self) -> None:
        await self._store.swap(self.key, self._value, b"", 0, strict=False)


class Claims(Protocol):
    """Where handlers take their claims: ``ClaimStore`` (Redis), or a fake in the tests."""

    # How long a claim taken and neither confirmed nor released keeps others off the work.
    @property
    def lease_seconds(self) -> float: ...

    async def claim(
        self, key: str, *, step: ClaimStep | None = None, call_within: float | None = None
    ) -> Claim: ...


async def is_done(redis: RedisClient, key: str, legacy: str | None = None) -> bool:
    """Whether the work of ``key`` was confirmed (not merely claimed, nor inside a call).

    ``legacy``: the name the key had before hash tags, read when ``key`` is not there.
    """
    value = await redis.get(key)
    if value is None and legacy is not None:
        value = await redis.get(legacy)
    if value is None:
        return False
    raw = value.encode() if isinstance(value, str) else bytes(value)
    return not raw.startswith((CLAIM_PREFIX, CALL_PREFIX, DOUBT_PREFIX))


def _step_values(result: Any) -> tuple[int | str | None, ...]:
    items = result if isinstance(result, list) else [result]
    return tuple(
        item.decode() if isinstance(item, bytes) else item if isinstance(item, int) else None
        for item in items
    )


class ClaimStore:
    """Claims kept in Redis, each taken (with its step) in one atomic script."""

    def __init__(
        self,
        redis: RedisClient,
        *,
        lease_seconds: float,
        done_ttl_seconds: int,
        clock: Callable[[], float] = time.time,
        legacy: LegacyName | None = None,
    ) -> None:
        """``legacy`` gives the name a key had before hash tags (``Keys.legacy``): a claim then
        adopts its key, and its step's keys, from those names (see ``Keys``)."""
        self._redis = redis
        self._clock = clock
        self._legacy = legacy
        self._lease_ms = max(1, round(lease_seconds * 1000))
        self.lease_seconds = self._lease_ms / 1000
        self._done_ttl = done_ttl_seconds
        self.done_ttl_ms = done_ttl_seconds * 1000
        self._swap = redis.register_script(_COMPARE_AND_SET)
        self._claim_scripts: dict[str, AsyncScript] = {}
        self._confirm_scripts: dict[str, AsyncScript] = {}
        # Claims given back after their caller was cancelled (see ``_take``), held till done.
        self._giving_back: set[asyncio.Future[Any]] = set()

    def now(self) -> float:
        return self._clock()

    async def claim(
        self, key: str, *, step: ClaimStep | None = None, call_within: float | None = None
    ) -> Claim:
        """Try to take ``key``; the returned claim's ``state`` says what the caller should do.

        ``step`` runs in the same atomic round trip when the claim is taken. With
        ``call_within``, a taken claim whose step returned 0 (or that has no step) is marked as
        inside the outside call at once (``in_call``), saving ``begin_call``'s round trip.
        """
        step = step or _NO_STEP
        script = self._claim_scripts.get(step.lua)
        if script is None:
            script = self._redis.register_script(
                _CLAIM_WITH_STEP.replace("__GO_NOW__", str(GO_NOW)).replace("__STEP__", step.lua)
            )
            self._claim_scripts[step.lua] = script
        value = lease_value()
        call = call_value(call_within, value, self.now()) if call_within is not None else b""
        keys = [key, *step.keys, *self._adoptions(key, *step.keys), *self._renames(step.adopt)]
        args = [value, self._lease_ms, call, self.done_ttl_ms, len(step.keys), *step.args]
        for _ in range(2):  # once more if the caller in doubt was settled by someone else
            taken, result = await self._take(script, keys, args, value, call)
            if taken:
                in_call = taken == 2
                values = _step_values(result)
                return Claim(
                    self,
                    key,
                    call if in_call else value,
                    ClaimState.CLAIMED,
                    step_result=int(values[0] or 0),
                    step_values=values,
                    in_call=in_call,
                )
            current = result.encode() if isinstance(result, str) else bytes(result)
            if current.startswith(CLAIM_PREFIX):
                return Claim(self, key, value, ClaimState.BUSY)
            if current.startswith((CALL_PREFIX, DOUBT_PREFIX)):
                if self.now() * 1000 < mark_deadline_ms(current):
                    return Claim(self, key, value, ClaimState.BUSY)
                # The caller died inside the call (or its settler died): settle it, once.
                doubt = doubt_value(self._lease_ms / 1000, value, self.now())
                if await self._swap(keys=[key], args=[current, doubt, self.done_ttl_ms]):
                    return Claim(self, key, doubt, ClaimState.IN_DOUBT)
                continue
            return Claim(self, key, value, ClaimState.DONE)
        return Claim(self, key, value, ClaimState.BUSY)

    async def _take(
        self, script: AsyncScript, keys: list[str], args: list[Any], value: bytes, call: bytes
    ) -> Any:
        """Run the claim script; a caller cancelled meanwhile gives back what it took.

        A consumer is cancelled when its channel closes, and the script may run all the same:
        a lease kept would hold the redelivery busy until it expires, and a call mark kept
        would have it park as in doubt a message that was never sent.
        """
        running = asyncio.ensure_future(script(keys=keys, args=args))
        try:
            return await asyncio.shield(running)
        except asyncio.CancelledError:
            running.add_done_callback(partial(self._give_back, keys[0], value, call))
            raise

    def _give_back(self, key: str, value: bytes, call: bytes, taking: asyncio.Future[Any]) -> None:
        if taking.cancelled() or taking.exception() is not None:
            return
        taken = taking.result()[0]
        if not taken:
            return
        held = call if taken == 2 else value
        releasing = asyncio.ensure_future(self._swap(keys=[key], args=[held, b"", 0]))
        self._giving_back.add(releasing)
        releasing.add_done_callback(self._given_back)

    def _given_back(self, releasing: asyncio.Future[Any]) -> None:
        self._giving_back.discard(releasing)
        if not releasing.cancelled() and releasing.exception() is not None:
            # Redis refused: the lease or mark runs out by itself (a call mark as in doubt).
            log.warning("giving back a cancelled claim failed", exc_info=releasing.exception())

    def _adoptions(self, *keys: str) -> list[str]:
        """(old name, name) of each of ``keys`` that may still be under its old name."""
        if self._legacy is None:
            return []
        pairs: list[str] = []
        for key in keys:
            old = self._legacy(key)
            if old is not None:
                pairs += [old, key]
        return pairs

    def _renames(self, pairs: tuple[str, ...]) -> list[str]:
        """``pairs``, each followed by its old name's name from before hash tags, if any."""
        renames: list[str] = []
        for old, new in zip(pairs[::2], pairs[1::2], strict=True):
            renames += [old, new]
            legacy = self._legacy(old) if self._legacy is not None else None
            if legacy is not None:
                renames += [legacy, new]
        return renames

    async def confirm(
        self, key: str, value: bytes = DONE, *, step: ClaimStep | None = None
    ) -> None:
        """Mark ``key`` done (``value`` may record a result, e.g. Graph's message id), with
        ``step`` run atomically in the same round trip."""
        if step is None:
            await self._redis.set(key, value, ex=self._done_ttl)
            return
        script = self._confirm_scripts.get(step.lua)
        if script is None:
            script = self._redis.register_script(_CONFIRM_WITH_STEP.replace("__STEP__", step.lua))
            self._confirm_scripts[step.lua] = script
        await script(keys=[key, *step.keys], args=[value, self._done_ttl, *step.args])

    async def swap(
        self, key: str, expected: bytes, new: bytes, ttl_ms: int, *, strict: bool = True
    ) -> None:
        """Replace ``expected`` by ``new`` (delete when empty); ClaimLost if ``strict`` fails."""
        changed = await self._swap(keys=[key], args=[expected, new, ttl_ms])
        if strict and not changed:
            raise ClaimLost(key)
