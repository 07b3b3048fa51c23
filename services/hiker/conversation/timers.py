"""Idle-timer decisions. Pure: no clock, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from hiker.core.contracts import IdleTimerStarted


class FiredDecision(Enum):
    FOLLOW_UP = "follow_up"
    SUPERSEDED = "superseded"


def delay_ms(idle_timeout_seconds: float) -> int:
    """Wait queues are named by their delay in whole milliseconds."""
    return max(1, round(idle_timeout_seconds * 1000))


def start_timer(
    phone_number_id: str, user: str, wamid: str, now: float, idle_timeout_seconds: float
) -> IdleTimerStarted:
    return IdleTimerStarted(
        phone_number_id=phone_number_id,
        user=user,
        wamid=wamid,
        scheduled_at=now,
        due_at=now + delay_ms(idle_timeout_seconds) / 1000,
    )


@dataclass(frozen=True)
class Activity:
    """The conversation's last inbound message, as kept in Redis."""

    last_wamid: str
    last_received_at: float


def decide_fired(timer: IdleTimerStarted, activity: Activity | None) -> FiredDecision:
    """A fired timer stands only if no message came after the one that started it.

    No recorded activity means the state was lost (it outlives every timer otherwise): sending
    the follow-up is the safer error than silently losing it.
    """
    if activity is None or activity.last_wamid == timer.wamid:
        return FiredDecision.FOLLOW_UP
    return FiredDecision.SUPERSEDED
