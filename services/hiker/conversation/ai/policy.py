"""The AI pipeline's decisions, pure: whether a due turn still stands, how long a failed one
waits before it is asked again, when to give up, and how long a turn may hold its claim."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final, Literal

from hiker.core.contracts import MessageReceived
from hiker.core.delays import snap_ms
from hiker.core.retrying import Backoff
from hiker.core.settings import RESPONDER_SHARE_OF_LEASE
from hiker.core.settings.ai import AISettings

# A model asked again after a failure: 1 s, 2 s, 4 s ... up to a minute, jittered; never sooner
# than the server's Retry-After.
RETRY_FIRST_SECONDS: Final = 1.0
RETRY_MOST_SECONDS: Final = 60.0
# Meta drops a typing indicator after 25 s: it is shown again this often while a call runs.
TYPING_EVERY_SECONDS: Final = 20.0


class Due(Enum):
    ANSWER = "answer"  # the latest message waiting: answer every message waiting now
    SUPERSEDED = "superseded"  # a later message waits too: its own turn answers all of them
    ANSWERED = "answered"  # nothing of it waits any more: a turn answered it already


def due(wamid: str, waiting: Sequence[MessageReceived]) -> Due:
    """What a turn set after the message ``wamid`` does, given the messages ``waiting`` for
    the model (in the order sent)."""
    if not any(message.wamid == wamid for message in waiting):
        return Due.ANSWERED
    return Due.ANSWER if waiting[-1].wamid == wamid else Due.SUPERSEDED


def retry_seconds(
    attempt: int, retry_after: float | None, random_unit: Callable[[], float] = random.random
) -> float:
    """How long a turn waits before its ``attempt``-th retry (0 the first): exponential with
    jitter, at least ``retry_after``, snapped up onto the wait-queue ladder (a bounded set of
    queues, and never sooner than asked)."""
    backoff = Backoff(RETRY_FIRST_SECONDS, RETRY_MOST_SECONDS, random_unit, attempt=attempt)
    wait = max(backoff.next_delay(), retry_after or 0.0)
    return snap_ms(wait, to="up") / 1000


def gives_up(first_attempt_at: float, now: float, give_up_seconds: float) -> bool:
    """Whether a turn first tried at ``first_attempt_at`` has been retried long enough."""
    return now - first_attempt_at >= give_up_seconds


@dataclass(frozen=True)
class AIPolicy:
    """The numbers an AI turn runs by (``HIKER_AI_*``)."""

    history_turns: int = 20
    debounce_seconds: float = 1.5
    # The whole turn's deadline (every model call of it, transcriptions included).
    turn_seconds: float = 360.0
    give_up_seconds: float = 600.0
    over_budget: Literal["reply", "handoff"] = "reply"
    # How long a handoff the pipeline decides (model unavailable, budget) lasts.
    handoff_minutes: float = 30.0

    @property
    def lease_seconds(self) -> float:
        """The turn's claim lease: its deadline is the same share of it as a responder's
        deadline is of the message's lease, so saving and publishing fit in what is left."""
        return self.turn_seconds / RESPONDER_SHARE_OF_LEASE

    @classmethod
    def of(cls, settings: AISettings, *, handoff_minutes: float = 30.0) -> AIPolicy:
        # A call per tool round, one for the answer after the last, one for transcriptions.
        calls = settings.ai_max_tool_rounds + 2
        return cls(
            history_turns=settings.ai_history_turns,
            debounce_seconds=settings.ai_debounce_ms / 1000,
            turn_seconds=settings.ai_timeout_seconds * calls,
            give_up_seconds=settings.ai_give_up_seconds,
            over_budget=settings.ai_over_budget,
            handoff_minutes=handoff_minutes,
        )
