"""Who answers a conversation: the bot, or a person until a time (a handoff).

Ownership is three fields of the conversation's Redis hash (``Keys.conversation``), so that the
claim step conversation runs for every message reads it in the same round trip (the
conversation's ``_RECORD`` script), and so that it survives restarts and holds across replicas:
- ``owner_until``: when a person's ownership ends by itself (epoch seconds); absent or past
  means the bot answers;
- ``owner_reason``: why it was handed over, as given;
- ``handed_at``: when a person last took it, kept after they give it back, so that an idle
  timer set before it is not fired into the person's conversation afterwards.

Both ``hiker api`` (``POST/DELETE .../handoff``) and conversation write it, through here.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from hiker.core import topology
from hiker.core.contracts import OwnerChanged
from hiker.core.keys import Keys
from hiker.core.publisher import Destination
from hiker.core.redis_store import RedisClient

OWNER_UNTIL: Final = "owner_until"
OWNER_REASON: Final = "owner_reason"
HANDED_AT: Final = "handed_at"

# The longest a handoff may last: the 24-hour service window closes before it anyway, and the
# conversation's hash (kept at least 25 hours after its last message) outlives it.
MAX_HANDOFF_SECONDS: Final = 24 * 3600
# The hash outlives the handoff by this much: a fired timer still finds ``handed_at``.
_KEEP_AFTER_SECONDS: Final = 3600

# KEYS: conversation hash. ARGV: until, reason, handed at, ttl ms (at least), '1' to only
# lengthen a person's ownership (never shorten one already longer). 0: left as it was.
# Extends the hash's life to cover the handoff, never shortens it.
_HAND_OVER = """
if ARGV[5] == '1' then
  local current = tonumber(redis.call('HGET', KEYS[1], 'owner_until') or '0')
  if current and current >= tonumber(ARGV[1]) then return 0 end
end
redis.call('HSET', KEYS[1], 'owner_until', ARGV[1], 'owner_reason', ARGV[2],
           'handed_at', ARGV[3])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < tonumber(ARGV[4]) then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
return 1
"""

# KEYS: conversation hash. ARGV: the reason the handoff to end was recorded with. 1: ended;
# 0: no handoff, or one recorded for another reason (left as it was).
_GIVE_BACK_IF = """
if redis.call('HGET', KEYS[1], 'owner_reason') ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'owner_until', 'owner_reason')
return 1
"""


@dataclass(frozen=True)
class Ownership:
    """A conversation's owner as recorded: a person until ``until``, or nobody (the bot)."""

    until: float | None = None
    reason: str | None = None
    handed_at: float | None = None

    def human(self, now: float) -> bool:
        """Whether a person owns it at ``now`` (it ends by itself at ``until``)."""
        return self.until is not None and now < self.until

    @classmethod
    def of(
        cls,
        until: bytes | str | int | None,
        reason: bytes | str | int | None,
        handed_at: bytes | str | int | None = None,
    ) -> Ownership:
        """From the raw hash fields (as Redis or a Lua script returns them)."""
        return cls(_number(until), _text(reason), _number(handed_at))


def owner_destination(owner: Literal["bot", "human"]) -> Destination:
    """Where an ``OwnerChanged`` is published: the outcomes exchange, which may have no queue
    bound (``hiker events`` not installed), hence not mandatory."""
    return Destination(
        topology.OUTCOMES_EXCHANGE,
        f"{topology.RK_OWNER_PREFIX}.{owner}",
        OwnerChanged.type_name(),
        mandatory=False,
    )


# Tells who needs to know (``hiker events``) that a conversation changed hands.
Announce = Callable[[OwnerChanged], Awaitable[None]]


class OwnershipStore:
    """Hand a conversation to a person, give it back, read who owns it; each change written
    is announced (``announce``) once Redis has it."""

    def __init__(self, redis: RedisClient, keys: Keys, announce: Announce | None = None) -> None:
        self._redis = redis
        self._keys = keys
        self._announce = announce
        self._hand_over = redis.register_script(_HAND_OVER)
        self._give_back_if = redis.register_script(_GIVE_BACK_IF)

    async def hand_to_person(
        self,
        phone_number_id: str,
        user: str,
        *,
        seconds: float,
        reason: str,
        now: float,
        lengthen_only: bool = False,
        way: str = "api",
    ) -> Ownership:
        """A person owns the conversation from ``now`` for ``seconds``, replacing any earlier
        handoff (a later ``until`` or an earlier one: the last word wins), or, with
        ``lengthen_only``, unless a handoff lasting longer is recorded (a late or redelivered
        echo never cuts short what an agent asked for)."""
        until = now + min(seconds, MAX_HANDOFF_SECONDS)
        keep_ms = max(1, math.ceil((until - now + _KEEP_AFTER_SECONDS) * 1000))
        written = await self._hand_over(
            keys=[self._keys.conversation(phone_number_id, user)],
            args=[repr(until), reason, repr(now), keep_ms, "1" if lengthen_only else "0"],
        )
        if written:
            # The count's index lives in a slot of its own, so apart from the script; a crash
            # between the two only leaves the gauge short until the next handoff of that user.
            await self._redis.zadd(self._keys.owned(), {_member(phone_number_id, user): until})
            await self._tell(phone_number_id, user, "human", until, reason, way, now)
        return Ownership(until, reason, now)

    async def give_back(
        self,
        phone_number_id: str,
        user: str,
        *,
        now: float,
        way: str = "api",
        only_reason: str | None = None,
    ) -> bool:
        """The bot answers again from now on (``handed_at`` stays: see the module); with
        ``only_reason``, only a handoff recorded for that reason ends (a way out ends only what
        its way in began: Conversation Routing never ends an agent's handoff). Whether it
        ended one (announced then)."""
        key = self._keys.conversation(phone_number_id, user)
        if only_reason is None:
            await self._redis.hdel(key, OWNER_UNTIL, OWNER_REASON)
        elif not await self._give_back_if(keys=[key], args=[only_reason]):
            return False
        await self._redis.zrem(self._keys.owned(), _member(phone_number_id, user))
        await self._tell(phone_number_id, user, "bot", None, None, way, now)
        return True

    async def _tell(
        self,
        phone_number_id: str,
        user: str,
        owner: Literal["bot", "human"],
        until: float | None,
        reason: str | None,
        way: str,
        now: float,
    ) -> None:
        if self._announce is None:
            return
        await self._announce(
            OwnerChanged(
                phone_number_id=phone_number_id,
                user=user,
                owner=owner,
                until=until,
                reason=reason,
                way=way,
                changed_at=now,
            )
        )

    async def count_owned(self, now: float) -> int:
        """How many conversations a person owns at ``now``; forgets the handoffs that ended
        (so the index stays as small as the handoffs under way)."""
        key = self._keys.owned()
        await self._redis.zremrangebyscore(key, "-inf", now)
        return int(await self._redis.zcard(key))

    async def read_many(self, conversations: Sequence[tuple[str, str]]) -> list[Ownership]:
        """Who owns each of ``conversations`` (phone number id, user), in one round trip."""
        if not conversations:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for phone_number_id, user in conversations:
            pipe.hmget(
                self._keys.conversation(phone_number_id, user),
                [OWNER_UNTIL, OWNER_REASON, HANDED_AT],
            )
        rows = await pipe.execute()
        return [Ownership.of(*row) for row in rows]

    async def read(self, phone_number_id: str, user: str) -> Ownership:
        until, reason, handed_at = await self._redis.hmget(
            self._keys.conversation(phone_number_id, user), [OWNER_UNTIL, OWNER_REASON, HANDED_AT]
        )
        return Ownership.of(until, reason, handed_at)


def _member(phone_number_id: str, user: str) -> str:
    return f"{phone_number_id}:{user}"


def _number(raw: bytes | str | int | None) -> float | None:
    if raw is None or raw in ("", b""):
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def _text(raw: bytes | str | int | None) -> str | None:
    if raw is None or raw in ("", b""):
        return None
    return raw.decode() if isinstance(raw, bytes) else str(raw)
