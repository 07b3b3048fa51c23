"""What conversation keeps in Redis per (phone number id, user): the last inbound message (for the
idle timer's stale check and the 24-hour window), the responder's state, and recent history.

The state is saved by compare-and-set on its version, so two replicas handling two messages of
one user never lose an update: the second finds the version moved and its message is retried
with the fresh state. Each save also records which message made it and the state before it, so
a message retried after its save (a crash before its reply was published) is answered from the
state it saw the first time, and its save is not applied twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from hiker.conversation.timers import SERVICE_WINDOW_SECONDS, Activity
from hiker.core.claims import ClaimStep
from hiker.core.keys import Keys
from hiker.core.ownership import HANDED_AT, OWNER_UNTIL, Ownership
from hiker.core.redis_store import RedisClient

# What the step that records a message returns first (its claim's ``step_result``).
RECORDED_LATEST: Final = 1  # the message is now the conversation's latest
LATER_ALREADY_RECORDED: Final = 0  # a later message of the user came first (out of order)

# Record a message as the conversation's latest unless a later one is already recorded (so
# that messages processed out of order never move the timer backwards), add it to the history
# unless a retry added it already, and return the state to answer it with.
# KEYS: conversation hash, history list. ARGV: wamid, received at, window opened at, ttl ms,
# history entry ('' for none), history length.
# Returns {latest, state version, state document, 1 when this message saved it already,
# owner_until, owner_reason}: the last two are who owns the conversation (``core.ownership``),
# read here so that a handoff costs a message no extra round trip.
_RECORD = """
local latest = 1
local current = redis.call('HGET', KEYS[1], 'last_received_at')
if current and tonumber(current) > tonumber(ARGV[2]) then
  latest = 0
else
  redis.call('HSET', KEYS[1], 'last_wamid', ARGV[1], 'last_received_at', ARGV[2],
             'window_opened_at', ARGV[3])
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if ARGV[5] ~= '' and not redis.call('LPOS', KEYS[2], ARGV[5]) then
  redis.call('RPUSH', KEYS[2], ARGV[5])
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[6]), -1)
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
local s = redis.call('HMGET', KEYS[1], 'state_v', 'state', 'state_by', 'state_before',
                     'owner_until', 'owner_reason')
local owner_until, owner_reason = s[5] or '', s[6] or ''
if s[3] == ARGV[1] then
  return {latest, tonumber(s[1]), s[4] or '', 1, owner_until, owner_reason}
end
return {latest, tonumber(s[1] or '0'), s[2] or '', 0, owner_until, owner_reason}
"""

# Before recording, when the conversation moves from a user's phone number to their
# business-scoped user id (the claim renamed its keys first): leave where it went under the
# phone number, so that a timer set under it finds the conversation. The alias is the step's
# last key, the new id and its ttl ms the last two arguments; the recording reads the rest.
_NOTE_ALIAS = """
redis.call('SET', KEYS[#KEYS], ARGV[#ARGV - 1], 'PX', ARGV[#ARGV])
"""

# A conversation moves to a user's new id (Meta reported that their ids changed). KEYS: the
# conversation hash and history under the new id, then for each previous id its hash, history
# and alias. ARGV: the new id, ttl ms, history length. Whatever came first: when the new id
# already holds a conversation (its messages were handled before the notice), that one is kept
# (its state too, unless it has none saved), the previous history goes before its own, and the
# previous conversation is gone, so that a timer set under it sees the newer messages (alias).
_MOVE = """
local moved = 0
for i = 3, #KEYS, 3 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    if redis.call('EXISTS', KEYS[1]) == 0 then
      redis.call('RENAME', KEYS[i], KEYS[1])
    else
      local s = redis.call('HMGET', KEYS[i], 'state', 'state_v', 'state_before')
      if s[2] and not redis.call('HGET', KEYS[1], 'state_v') then
        redis.call('HSET', KEYS[1], 'state', s[1] or '', 'state_v', s[2], 'state_by', '',
                   'state_before', s[3] or '')
      end
      redis.call('DEL', KEYS[i])
    end
    moved = 1
  end
  if redis.call('EXISTS', KEYS[i + 1]) == 1 then
    if redis.call('EXISTS', KEYS[2]) == 0 then
      redis.call('RENAME', KEYS[i + 1], KEYS[2])
    else
      local turns = redis.call('LRANGE', KEYS[i + 1], 0, -1)
      for j = #turns, 1, -1 do redis.call('LPUSH', KEYS[2], turns[j]) end
      redis.call('LTRIM', KEYS[2], -tonumber(ARGV[3]), -1)
      redis.call('DEL', KEYS[i + 1])
    end
  end
  redis.call('SET', KEYS[i + 2], ARGV[1], 'PX', ARGV[2])
end
return moved
"""

# Compare-and-set of the state. KEYS: conversation hash. ARGV: the version it was read at, the
# id of what saves it, the new document, ttl ms. 1: saved (or saved already by that id); 0: the
# version moved meanwhile (another message of the user was answered first).
_SAVE_STATE = """
local s = redis.call('HMGET', KEYS[1], 'state_v', 'state', 'state_by')
if s[3] == ARGV[2] then return 1 end
local version = tonumber(s[1] or '0')
if version ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'state_before', s[2] or '', 'state', ARGV[3], 'state_by', ARGV[2],
           'state_v', version + 1)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""

# Append turns not there yet (a retry adds nothing twice). KEYS: history list. ARGV: length,
# ttl ms, entries.
_APPEND = """
for i = 3, #ARGV do
  if not redis.call('LPOS', KEYS[1], ARGV[i]) then redis.call('RPUSH', KEYS[1], ARGV[i]) end
end
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[1]), -1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


@dataclass(frozen=True)
class Turn:
    """One message of the history: who said it, what it was, when."""

    direction: str  # "in" (the user) or "out" (the business)
    id: str  # the inbound wamid, or the outbound action's idempotency key
    type: str
    text: str | None
    at: float

    def encoded(self) -> str:
        # Deterministic, so that a retry's entry is the same string and is not added twice.
        return json.dumps(
            [self.direction, self.id, self.type, self.text, self.at], separators=(",", ":")
        )

    @classmethod
    def decoded(cls, raw: bytes | str) -> Turn:
        direction, id_, type_, text, at = json.loads(raw)
        return cls(direction, id_, type_, text, at)


@dataclass(frozen=True)
class Recorded:
    """What recording a message returned: whether it is the latest, and the state to use."""

    latest: bool
    state_version: int
    state: dict[str, Any]
    saved_already: bool
    # Who owned the conversation when the message was recorded.
    owner: Ownership = field(default_factory=Ownership)

    @classmethod
    def of(cls, values: Sequence[int | str | None]) -> Recorded:
        defaults: list[int | str | None] = [0, 0, "", 0, "", ""]
        latest, version, document, already, until, reason = [
            *values,
            *defaults[len(values) :],
        ][:6]
        return cls(
            latest == RECORDED_LATEST,
            int(version or 0),
            _document(document if isinstance(document, str) else ""),
            already == 1,
            Ownership.of(until, reason),
        )


class ConversationStore:
    def __init__(
        self,
        redis: RedisClient,
        keys: Keys,
        *,
        idle_timeout_seconds: float,
        ttl_seconds: float = SERVICE_WINDOW_SECONDS,
        history_length: int = 50,
    ) -> None:
        self._redis = redis
        self._keys = keys
        # Outlives the idle timer and the 24 h window it describes, and the state's useful life.
        lifetime = max(idle_timeout_seconds * 2, SERVICE_WINDOW_SECONDS, ttl_seconds) + 3600
        self._ttl_ms = round(lifetime * 1000)
        self._history_length = history_length
        self._save = redis.register_script(_SAVE_STATE)
        self._append = redis.register_script(_APPEND)

    def record_step(
        self,
        phone_number_id: str,
        user: str,
        wamid: str,
        received_at: float,
        sent_at: int,
        turn: Turn | None = None,
        adopt_from: str | None = None,
    ) -> ClaimStep:
        """The claim step that stores ``wamid`` as the conversation's latest message, adds
        ``turn`` to the history and reads the state (``Recorded.of(claim.step_values)``).

        Its ``step_result`` is ``RECORDED_LATEST``, or ``LATER_ALREADY_RECORDED`` when a later
        message is stored already. ``adopt_from``: the user's phone number when ``user`` is
        their business-scoped user id: what is still kept under the phone number (state,
        history) moves to ``user`` first, atomically with the claim (``Keys.adoptions``).
        """
        keys = (
            self._keys.conversation(phone_number_id, user),
            self._keys.history(phone_number_id, user),
        )
        args: tuple[str | int, ...] = (
            wamid,
            repr(received_at),
            str(sent_at),
            self._ttl_ms,
            turn.encoded() if turn is not None else "",
            self._history_length,
        )
        adopt = self._keys.adoptions(phone_number_id, adopt_from, user) if adopt_from else ()
        if not adopt or adopt_from is None:
            return ClaimStep(_RECORD, keys, args)
        alias = self._keys.alias(phone_number_id, adopt_from)
        return ClaimStep(
            _NOTE_ALIAS + _RECORD, (*keys, alias), (*args, user, self._ttl_ms), adopt=adopt
        )

    def move_step(
        self, phone_number_id: str, previous: Sequence[str], user: str
    ) -> ClaimStep | None:
        """The claim step that moves the conversation kept under any of ``previous`` (the
        user's former ids) to ``user`` (``_MOVE``): its state and history, and the way there
        for timers set under them (``last_activity``). None where conversations are not
        moved (a Redis Cluster: it renames across hash slots)."""
        if not self._keys.adopt_phone_keys or not previous:
            return None
        keys = [
            self._keys.conversation(phone_number_id, user),
            self._keys.history(phone_number_id, user),
        ]
        for old in previous:
            keys += [
                self._keys.conversation(phone_number_id, old),
                self._keys.history(phone_number_id, old),
                self._keys.alias(phone_number_id, old),
            ]
        return ClaimStep(_MOVE, tuple(keys), (user, self._ttl_ms, self._history_length))

    async def save_state(
        self,
        phone_number_id: str,
        user: str,
        *,
        read_at_version: int,
        saved_by: str,
        state: dict[str, Any],
    ) -> bool:
        """Save ``state`` unless the version moved since it was read; whether it was saved."""
        document = json.dumps(state, separators=(",", ":"), sort_keys=True)
        saved = await self._save(
            keys=[self._keys.conversation(phone_number_id, user)],
            args=[read_at_version, saved_by, document, self._ttl_ms],
        )
        return bool(saved)

    async def read_state(self, phone_number_id: str, user: str) -> tuple[int, dict[str, Any]]:
        """The state and its version (for what is not a message: a reminder firing)."""
        version, document = await self._redis.hmget(
            self._keys.conversation(phone_number_id, user), ["state_v", "state"]
        )
        text = document.decode() if isinstance(document, bytes) else document or ""
        return int(version or 0), _document(text)

    def append_step(
        self, phone_number_id: str, user: str, turns: Sequence[Turn]
    ) -> ClaimStep | None:
        """The step that adds ``turns`` to the history (for the claim's confirm), or None."""
        if not turns or not self._history_length:
            return None
        return ClaimStep(
            _APPEND,
            (self._keys.history(phone_number_id, user),),
            (self._history_length, self._ttl_ms, *(t.encoded() for t in turns)),
        )

    async def append_turns(self, phone_number_id: str, user: str, turns: Sequence[Turn]) -> None:
        step = self.append_step(phone_number_id, user, turns)
        if step is not None:
            await self._append(keys=list(step.keys), args=list(step.args))

    async def history(self, phone_number_id: str, user: str, limit: int) -> list[Turn]:
        """The last ``limit`` turns, oldest first."""
        if limit <= 0:
            return []
        raw = await self._redis.lrange(self._keys.history(phone_number_id, user), -limit, -1)
        return [Turn.decoded(item) for item in raw]

    async def last_activity(self, phone_number_id: str, user: str) -> Activity | None:
        """The conversation's last inbound message; for one that moved from ``user`` (a phone
        number) to a business-scoped user id, that conversation's, naming it (``moved_to``)."""
        key = self._keys.conversation(phone_number_id, user)
        wamid, received_at, owner_until, handed_at = await self._redis.hmget(
            key, ["last_wamid", "last_received_at", OWNER_UNTIL, HANDED_AT]
        )
        owner = Ownership.of(owner_until, None, handed_at)
        legacy = self._keys.legacy(key)
        if wamid is None and legacy is not None:  # recorded before the upgrade, not since
            wamid, received_at = await self._redis.hmget(legacy, ["last_wamid", "last_received_at"])
        moved_to = None
        if wamid is None and self._keys.adopt_phone_keys:
            moved = await self._redis.get(self._keys.alias(phone_number_id, user))
            if moved is not None:
                moved_to = moved.decode() if isinstance(moved, bytes) else str(moved)
                key = self._keys.conversation(phone_number_id, moved_to)
                wamid, received_at, owner_until, handed_at = await self._redis.hmget(
                    key, ["last_wamid", "last_received_at", OWNER_UNTIL, HANDED_AT]
                )
                # The moved conversation's owner, not the empty one's it left.
                owner = Ownership.of(owner_until, None, handed_at)
        if wamid is None or received_at is None:
            return None
        if isinstance(wamid, bytes):
            wamid = wamid.decode()
        return Activity(
            last_wamid=wamid,
            last_received_at=float(received_at),
            moved_to=moved_to,
            owner_until=owner.until,
            handed_at=owner.handed_at,
        )


def _document(text: str) -> dict[str, Any]:
    if not text:
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {}
