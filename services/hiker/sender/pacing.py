"""Pacing shared by every sender replica, kept in Redis (GCRA): per phone number, and per user.

Each send reserves the next free slot of its phone number (one every 1/rate seconds: Meta's
throughput limit) and of its user (Meta's pair rate limit, about one message every 6 seconds
to one user, bursts allowed: a reply of a few actions goes at once, a long burst is spread),
in the same Redis round trip that claims the send, and waits until both allow it. The
reservations are atomic in Redis, on Redis's clock, so N replicas together keep the rates that
one would; nothing is lost when a replica restarts but a few milliseconds of schedule.

A slot further out than a claim may be held (the sender's handler decides) is not waited for
with the send in hand: the send goes to a delay queue carrying its slot (the same step checks
it on its return, on Redis's clock too), so that it is counted against the rates once only and
keeps its place; reserving again on every return would push it further out each time.
Should it come back over a minute late (a stalled sender, a poisoned send replayed), it is
paced afresh instead: such sends, many at once, would otherwise all go at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Final

from hiker.core.claims import Claim, Claims, ClaimStep
from hiker.core.keys import Keys

# The body of a claim step (``ClaimStep``): the send's slots are reserved in the same round trip
# that claims the send. KEYS: the number's and the user's schedule; ARGV: the number's interval,
# the user's interval and the user's tolerance (interval x (burst - 1)), in microseconds (0: no
# pacing of that kind), and the slot the send reserved before (0: none). A slot reserved before
# is kept, unless it is more than ARGV[5] microseconds past: a send that comes back that late
# (a stalled sender, a poisoned send replayed) is paced afresh, lest many such go at once.
# Returns 0 (``claims.GO_NOW``: at once), or {the microseconds to wait, the slot, in
# microseconds on Redis's clock}: a list, which never enters the call at once.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local carried = tonumber(ARGV[4])
local wait
if carried > 0 and now - carried <= tonumber(ARGV[5]) then
  wait = carried - now
  if wait < 0 then wait = 0 end
else
  local function reserve(key, interval, tolerance)
    if interval == 0 then return 0 end
    local tat = tonumber(redis.call('GET', key) or '0')
    if tat < now then tat = now end
    local wait = tat - tolerance - now
    if wait < 0 then wait = 0 end
    local next_tat = tat + interval
    redis.call('SET', key, next_tat, 'PX', math.floor((next_tat - now) / 1000) + 1000)
    return wait
  end
  local number_wait = reserve(KEYS[1], tonumber(ARGV[1]), 0)
  local user_wait = reserve(KEYS[2], tonumber(ARGV[2]), tonumber(ARGV[3]))
  wait = math.max(number_wait, user_wait)
end
if wait == 0 then return 0 end
return {wait, now + wait}
"""

# Where the slot is in a claim's ``step_values`` (after the wait), when there is a wait.
SLOT: Final = 1
# How late a deferred send may come back and still keep the slot it reserved (see _RESERVE).
KEPT_SLOT_LATENESS_SECONDS: Final = 60.0


@dataclass(frozen=True)
class Paced:
    """A send's claim, and how long until its pacing slot: ``wait_us`` (0: now, and the Graph
    call may be marked started already: ``claim.in_call``), and the slot itself (microseconds
    on Redis's clock) when it is not now."""

    claim: Claim
    wait_us: int = 0
    slot_us: int | None = None


def paced(claim: Claim) -> Paced:
    """What a claim taken with ``Pacer.reserve_step``'s step says of the send's slot."""
    wait_us = claim.step_result or 0
    if not wait_us:
        return Paced(claim)
    slot = claim.step_values[SLOT] if len(claim.step_values) > SLOT else None
    return Paced(claim, wait_us, int(slot) if slot is not None else None)


class Pacer:
    def __init__(
        self,
        keys: Keys,
        rate_per_second: float,
        *,
        user_interval_seconds: float = 0.0,
        user_burst: int = 1,
    ) -> None:
        self._keys = keys
        self._interval_us = round(1_000_000 / rate_per_second) if rate_per_second > 0 else 0
        self._user_interval_us = round(user_interval_seconds * 1_000_000)
        self._user_tolerance_us = self._user_interval_us * max(0, user_burst - 1)

    def reserve_step(
        self, phone_number_id: str, user: str, *, reserved_us: int | None = None
    ) -> ClaimStep | None:
        """The claim step that reserves this send's slots, or keeps ``reserved_us``, the slot
        it reserved before (a deferred send). It returns the microseconds to wait for the slot
        (``claims.GO_NOW`` when it is now) and, when that is not now, the slot itself
        (``step_values[SLOT]``); None when pacing is off."""
        if self._interval_us == 0 and self._user_interval_us == 0:
            return None
        return ClaimStep(
            _RESERVE,
            (self._keys.pace(phone_number_id), self._keys.pace_user(phone_number_id, user)),
            (
                self._interval_us,
                self._user_interval_us,
                self._user_tolerance_us,
                reserved_us or 0,
                round(KEPT_SLOT_LATENESS_SECONDS * 1_000_000),
            ),
        )

    async def claim(
        self,
        claims: Claims,
        key: str,
        phone_number_id: str,
        user: str,
        *,
        reserved_us: int | None = None,
        call_within: float | None = None,
    ) -> Paced:
        """Claim the send ``key`` and, in the same round trip, reserve its slots (or keep
        ``reserved_us``, the slot it reserved before); with ``call_within``, a send whose slot
        is now is marked as inside its Graph call at once (``Claims.claim``)."""
        step = self.reserve_step(phone_number_id, user, reserved_us=reserved_us)
        return paced(await claims.claim(key, step=step, call_within=call_within))

    async def wait(self, reserved_us: int | None) -> None:
        """Sleep for ``reserved_us``, the wait for a slot that ``claim`` returned."""
        if reserved_us:
            await asyncio.sleep(reserved_us / 1_000_000)
