"""The user's messages waiting for an AI turn, kept in Redis until a turn answers them.

Nothing waits in process memory: a message no rule and no handler took is added here (by wamid,
so a redelivery adds nothing twice) before its turn is scheduled, and removed by the claim's
confirm of the turn that answered it, together with that turn's additions to the history. A
crash anywhere in between leaves the messages here for the turn's redelivery, or the next one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hiker.conversation.state import Turn
from hiker.core.claims import ClaimStep
from hiker.core.contracts import MessageReceived
from hiker.core.keys import Keys
from hiker.core.redis_store import RedisClient

# KEYS: pending hash. ARGV: wamid, the message's JSON, ttl ms.
_ADD = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

# The confirm of a turn. KEYS: pending hash, history list. ARGV: history length, ttl ms, the
# number n of wamids answered, those n wamids, the number m of history entries whose text
# changes (a voice note's transcript), m pairs (entry as recorded, entry with its text), then the
# turn's reply as history entries (added unless there already: a retry adds nothing twice).
_ANSWERED = """
local n = tonumber(ARGV[3])
for i = 4, 3 + n do redis.call('HDEL', KEYS[1], ARGV[i]) end
local m = tonumber(ARGV[4 + n])
local first = 5 + n
for i = first, first + 2 * m - 1, 2 do
  local at = redis.call('LPOS', KEYS[2], ARGV[i])
  if at then redis.call('LSET', KEYS[2], at, ARGV[i + 1]) end
end
local added = 0
for i = first + 2 * m, #ARGV do
  if not redis.call('LPOS', KEYS[2], ARGV[i]) then
    redis.call('RPUSH', KEYS[2], ARGV[i])
    added = 1
  end
end
if added == 1 then
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[1]), -1)
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return 1
"""


def recorded_turn(message: MessageReceived) -> Turn:
    """The history entry conversation recorded for ``message`` when it came in."""
    return Turn("in", message.wamid, message.message_type, message.text, message.received_at)


class PendingTurns:
    def __init__(
        self, redis: RedisClient, keys: Keys, *, ttl_seconds: float, history_length: int
    ) -> None:
        """``ttl_seconds``: how long unanswered messages are kept (past the 24-hour window
        nothing free-form may answer them anyway)."""
        self._redis = redis
        self._keys = keys
        self._ttl_ms = round(ttl_seconds * 1000)
        self._history_length = history_length
        self._add = redis.register_script(_ADD)

    async def add(self, message: MessageReceived) -> None:
        """Keep ``message`` until a turn answers it (idempotent)."""
        await self._add(
            keys=[self._keys.ai_pending(message.phone_number_id, message.user)],
            args=[message.wamid, message.model_dump_json(), self._ttl_ms],
        )

    async def waiting(self, phone_number_id: str, user: str) -> list[MessageReceived]:
        """The messages waiting, in the order the user sent them."""
        raw = await self._redis.hgetall(self._keys.ai_pending(phone_number_id, user))
        messages = [MessageReceived.model_validate_json(value) for value in raw.values()]
        return sorted(messages, key=lambda m: (m.timestamp, m.received_at, m.wamid))

    async def forget(self, phone_number_id: str, user: str, wamids: Sequence[str]) -> None:
        """Drop ``wamids`` without answering them (a person owns the conversation)."""
        if wamids:
            await self._redis.hdel(self._keys.ai_pending(phone_number_id, user), *wamids)

    def answered_step(
        self,
        phone_number_id: str,
        user: str,
        answered: Sequence[MessageReceived],
        said: Sequence[Turn],
        transcripts: Mapping[str, str],
    ) -> ClaimStep:
        """The step of a turn's confirm: ``answered`` leave the waiting messages, what the
        turn ``said`` joins the history, and voice notes' transcripts replace their text."""
        changes: list[str] = []
        for message in answered:
            text = transcripts.get(message.wamid)
            if text is not None:
                before = recorded_turn(message)
                after = Turn(before.direction, before.id, before.type, text, before.at)
                changes += [before.encoded(), after.encoded()]
        return ClaimStep(
            _ANSWERED,
            (
                self._keys.ai_pending(phone_number_id, user),
                self._keys.history(phone_number_id, user),
            ),
            (
                max(self._history_length, 1),
                self._ttl_ms,
                len(answered),
                *(message.wamid for message in answered),
                len(changes) // 2,
                *changes,
                *(turn.encoded() for turn in said if self._history_length),
            ),
        )
