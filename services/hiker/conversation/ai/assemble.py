"""The AI responder's parts, put together for conversation's declaration (``app.py``)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiohttp

from hiker.bot.ai import OnResult
from hiker.conversation.ai.budget import TokenBudget
from hiker.conversation.ai.engine import AITurns
from hiker.conversation.ai.model import Metered, http_model_client, record_calls
from hiker.conversation.ai.pending import PendingTurns
from hiker.conversation.ai.policy import AIPolicy
from hiker.conversation.ai.ports import HandsOver
from hiker.conversation.ai.tools import Tool
from hiker.conversation.ai.turn import TurnResult, TurnRunner, build_turn_runner
from hiker.conversation.answering import Conversations, ScheduleTimer
from hiker.conversation.metrics import ConversationMetrics
from hiker.conversation.outbox import ConversationOutbox
from hiker.conversation.rulesource import RuleSource
from hiker.conversation.timers import hop_seconds
from hiker.core.ai_model import ModelClient
from hiker.core.claims import ClaimStore
from hiker.core.contracts import TimerScheduled
from hiker.core.delays import snap_ms
from hiker.core.keys import Keys
from hiker.core.media import MediaSource
from hiker.core.redis_store import RedisClient
from hiker.core.settings import ConversationSettings


@dataclass(frozen=True)
class AIParts:
    turns: AITurns
    # The runner turns use, also attached to a bot's ``bot.ai``; what its turns spent.
    runner: TurnRunner
    spend: OnResult
    close: Callable[[], Awaitable[None]]


def assemble_ai(
    settings: ConversationSettings,
    *,
    redis: RedisClient,
    keys: Keys,
    rules: RuleSource,
    conversations: Conversations,
    outbox: ConversationOutbox,
    handoffs: HandsOver,
    metrics: ConversationMetrics,
    model: ModelClient | None,
    session: Callable[[], aiohttp.ClientSession],
    media: MediaSource | None = None,
    bot_tools: Sequence[Tool] = (),
) -> AIParts:
    """The AI pipeline over ``model`` (wrapped to report its calls), or over the HTTP client
    of ``HIKER_AI_BASE_URL`` when none is given."""
    on_call = record_calls(metrics.ai)
    client = (
        Metered(model, on_call)
        if model is not None
        else http_model_client(settings, on_call, session())
    )
    policy = AIPolicy.of(settings, handoff_minutes=settings.handoff_minutes)
    runner = build_turn_runner(
        client,
        settings,
        media=media,
        bot_tools=bot_tools,
        handoff_minutes=settings.handoff_minutes,
    )
    budget = TokenBudget(
        redis,
        keys,
        per_user=settings.ai_max_tokens_per_user_day,
        per_number=settings.ai_max_tokens_per_number_day,
    )

    async def spend(phone_number_id: str, user: str, result: TurnResult) -> None:
        # A handler's own turn (``bot.ai.answer``) counts against the same daily budgets.
        await budget.spend(phone_number_id, user, result.usage.total_tokens)

    turns = AITurns(
        runner=runner,
        pending=PendingTurns(
            redis,
            keys,
            ttl_seconds=settings.conversation_ttl_seconds,
            history_length=settings.history_length,
        ),
        budget=budget,
        conversations=conversations,
        claims=ClaimStore(
            redis,
            lease_seconds=policy.lease_seconds,
            done_ttl_seconds=settings.dedupe_ttl_seconds,
        ),
        keys=keys,
        rules=rules,
        send=outbox.send,
        schedule=outbox.schedule_ai,
        remind=first_hop(outbox.schedule),
        handoffs=handoffs,
        metrics=metrics,
        policy=policy,
        system_prompt=settings.ai_prompt,
    )
    return AIParts(turns, runner, spend, client.close)


def first_hop(
    schedule: ScheduleTimer, clock: Callable[[], float] = time.time
) -> Callable[[TimerScheduled], Awaitable[None]]:
    """Set a reminder the model asked for on its first hop, as ``Answering.schedule_hop``."""

    async def hop(timer: TimerScheduled) -> None:
        now = clock()
        seconds = hop_seconds(timer, now)
        if seconds is None:
            seconds = snap_ms(max(timer.due_at - now, 0.25), to="up") / 1000
        await schedule(timer, seconds)

    return hop
