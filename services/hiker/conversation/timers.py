"""Idle-timer and service-window decisions. Pure: no clock, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final

from hiker.core.contracts import IdleTimerStarted
from hiker.core.topology import delay_ms

# Meta lets a business send free-form messages for 24 hours after the user's last message.
SERVICE_WINDOW_SECONDS: Final = 24 * 3600


class FiredDecision(Enum):
    FOLLOW_UP = "follow_up"
    FOLLOW_UP_TEMPLATE = "follow_up_template"  # the window closed: send the approved template
    SKIP_WINDOW_CLOSED = "skip_window_closed"  # the window closed and no template is configured
    SUPERSEDED = "superseded"


def start_timer(
    phone_number_id: str,
    user: str,
    wamid: str,
    now: float,
    idle_timeout_seconds: float,
    message_timestamp: int | None = None,
) -> IdleTimerStarted:
    return IdleTimerStarted(
        phone_number_id=phone_number_id,
        user=user,
        wamid=wamid,
        scheduled_at=now,
        due_at=now + delay_ms(idle_timeout_seconds) / 1000,
        message_timestamp=message_timestamp,
    )


@dataclass(frozen=True)
class Activity:
    """The conversation's last inbound message, as kept in Redis."""

    last_wamid: str
    last_received_at: float


def window_open(message_timestamp: int | None, now: float) -> bool:
    """Whether a free-form message may still be sent for a user message sent at that time."""
    return message_timestamp is None or now < message_timestamp + SERVICE_WINDOW_SECONDS


def decide_fired(
    timer: IdleTimerStarted, activity: Activity | None, now: float, has_template: bool
) -> FiredDecision:
    """A fired timer stands only if no message came after the one that started it.

    No recorded activity means the state was lost (it outlives every timer otherwise): sending
    the follow-up is the safer error than silently losing it. Outside the service window a text
    would fail with Graph error 131047, so it becomes the template, or nothing.
    """
    if activity is not None and activity.last_wamid != timer.wamid:
        return FiredDecision.SUPERSEDED
    if window_open(timer.message_timestamp, now):
        return FiredDecision.FOLLOW_UP
    return FiredDecision.FOLLOW_UP_TEMPLATE if has_template else FiredDecision.SKIP_WINDOW_CLOSED
