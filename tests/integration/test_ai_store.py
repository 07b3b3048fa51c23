"""What the AI pipeline keeps in Redis, against the real one: the messages waiting for a turn
(kept once, answered with the turn's confirm, a voice note's transcript put into the history)
and the daily token budgets (counted per user and per number, expiring on their own)."""

from __future__ import annotations

import time

import pytest
from redis.asyncio import Redis

from hiker.conversation.ai.budget import TokenBudget, utc_day
from hiker.conversation.ai.pending import PendingTurns, recorded_turn
from hiker.conversation.state import ConversationStore, Turn
from hiker.core.claims import ClaimStore
from hiker.core.contracts import MessageReceived
from hiker.core.keys import Keys

pytestmark = pytest.mark.integration

PNID, USER = "100000000000001", "15550800001"


def message(wamid: str, kind: str, text: str | None, at: float) -> MessageReceived:
    return MessageReceived(
        wamid=wamid,
        phone_number_id=PNID,
        user=USER,
        message_type=kind,
        text=text,
        timestamp=int(at),
        received_at=at,
    )


async def test_waiting_messages_are_kept_once_and_leave_with_the_turn_that_answered_them(
    redis_url: str, redis_prefix: str
) -> None:
    redis = Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    try:
        conversations = ConversationStore(redis, keys, idle_timeout_seconds=600)
        pending = PendingTurns(redis, keys, ttl_seconds=3600, history_length=50)
        now = time.time()
        voice = message("wamid.A", "audio", None, now)
        text = message("wamid.B", "text", "and one more thing", now + 1)
        for received in (text, voice, text):  # out of order, and one twice
            await conversations.append_turns(PNID, USER, [recorded_turn(received)])
            await pending.add(received)
        assert [m.wamid for m in await pending.waiting(PNID, USER)] == ["wamid.A", "wamid.B"]
        assert 0 < await redis.pttl(keys.ai_pending(PNID, USER)) <= 3_600_000
        claims = ClaimStore(redis, lease_seconds=30, done_ttl_seconds=60)
        claim = await claims.claim(keys.ai_turn(PNID, USER, "wamid.B"))
        said = [Turn("out", "ai:wamid.B", "text", "Sure, tell me.", now + 1)]
        step = pending.answered_step(
            PNID, USER, [voice, text], said, {"wamid.A": "where is my order"}
        )
        await claim.confirm(step=step)
        await claims.claim(keys.ai_turn(PNID, USER, "wamid.B"))  # done: a duplicate
        assert await pending.waiting(PNID, USER) == []
        history = await conversations.history(PNID, USER, 10)
        assert [(t.direction, t.type, t.text) for t in history] == [
            ("in", "text", "and one more thing"),
            ("in", "audio", "where is my order"),
            ("out", "text", "Sure, tell me."),
        ]
        await claim.confirm(step=step)  # a retried confirm adds nothing twice
        assert len(await conversations.history(PNID, USER, 10)) == 3
        assert not await redis.exists(keys.ai_pending(PNID, USER))  # nothing left behind
    finally:
        await redis.aclose()


async def test_budgets_count_per_user_and_per_number_and_expire(
    redis_url: str, redis_prefix: str
) -> None:
    redis = Redis.from_url(redis_url)
    keys = Keys(redis_prefix)
    try:
        budget = TokenBudget(redis, keys, per_user=100, per_number=150)
        assert await budget.spent(PNID, USER) is None
        await budget.spend(PNID, USER, 60)
        await budget.spend(PNID, USER, 40)
        assert await budget.spent(PNID, USER) == "user"
        assert await budget.spent(PNID, "15550800002") is None
        await budget.spend(PNID, "15550800002", 50)
        assert await budget.spent(PNID, "15550800003") == "number"
        day = utc_day(time.time())
        ttl = await redis.ttl(keys.ai_tokens_number(PNID, day))
        assert 0 < ttl <= 2 * 24 * 3600
        assert int(await redis.get(keys.ai_tokens_user(PNID, USER, day)) or 0) == 100
    finally:
        await redis.aclose()
