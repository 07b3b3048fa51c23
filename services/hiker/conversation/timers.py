"""Idle-timer, reminder and service-window decisions. Pure: no clock, no I/O.

The idle follow-up waits its configured delay in one wait queue. A reminder may ask for any
delay: it travels in hops, each snapped down onto the wait-queue ladder (``core.delays``), and
is set again for what remains until it is due, so its lateness stays small while the number
of wait queues stays bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final

from hiker.core.contracts import TimerScheduled
from hiker.core.delays import snap_ms
from hiker.core.requests import Remind
from hiker.core.topology import delay_ms

# Meta lets a business send free-form messages for 24 hours after the user's last message.
SERVICE_WINDOW_SECONDS: Final = 24 * 3600
# A reminder that comes out of a wait queue this early or less is due: no further hop.
DUE_WITHIN_SECONDS: Final = 1.0


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
    wa_id: str | None = None,
) -> TimerScheduled:
    return TimerScheduled(
        phone_number_id=phone_number_id,
        user=user,
        wamid=wamid,
        scheduled_at=now,
        due_at=now + delay_ms(idle_timeout_seconds) / 1000,
        message_timestamp=message_timestamp,
        wa_id=wa_id,
    )


def start_reminder(
    phone_number_id: str,
    user: str,
    wamid: str,
    now: float,
    remind: Remind,
    message_timestamp: int | None = None,
) -> TimerScheduled:
    """The timer of ``remind``, set after the message ``wamid``."""
    return TimerScheduled(
        phone_number_id=phone_number_id,
        user=user,
        wamid=wamid,
        scheduled_at=now,
        due_at=now + remind.after_seconds,
        message_timestamp=message_timestamp,
        reminder=remind.key,
        data=dict(remind.data),
        keep=remind.keep,
    )


def hop_seconds(timer: TimerScheduled, now: float) -> float | None:
    """How long a reminder's next hop waits (a rung of the ladder, never past its due time);
    None when it is due now. The idle follow-up always travels in one hop."""
    remaining = timer.due_at - now
    if timer.reminder is None or remaining <= DUE_WITHIN_SECONDS:
        return None
    return snap_ms(remaining, to="down") / 1000


def superseded(timer: TimerScheduled, activity: Activity | None) -> bool:
    """Whether the user wrote after the message the timer was set after (and it does not keep)."""
    return not timer.keep and activity is not None and activity.last_wamid != timer.wamid


@dataclass(frozen=True)
class Activity:
    """The conversation's last inbound message, as kept in Redis."""

    last_wamid: str
    last_received_at: float
    # The id the conversation is kept under now, when it moved from the one asked about (a
    # phone number adopted by a business-scoped user id); None: that same one.
    moved_to: str | None = None
    # A person owns the conversation until then (``core.ownership``); None: the bot.
    owner_until: float | None = None
    # When a person last took it: a follow-up set before that is theirs to no longer send.
    handed_at: float | None = None


def silenced(timer: TimerScheduled, activity: Activity | None, now: float) -> bool:
    """Whether a handoff keeps the fired ``timer`` from being sent: nothing is sent while a
    person owns the conversation, and an idle follow-up set before a person took it is dropped
    even once the bot has it back (its idle period starts afresh with the next message the bot
    answers). A reminder set before then still fires after."""
    if activity is None:
        return False
    if activity.owner_until is not None and now < activity.owner_until:
        return True
    return (
        timer.reminder is None
        and activity.handed_at is not None
        and activity.handed_at >= timer.scheduled_at
    )


def window_open(message_timestamp: int | None, now: float) -> bool:
    """Whether a free-form message may still be sent for a user message sent at that time."""
    return message_timestamp is None or now < message_timestamp + SERVICE_WINDOW_SECONDS


def decide_fired(
    timer: TimerScheduled, activity: Activity | None, now: float, has_template: bool
) -> FiredDecision:
    """A fired timer stands only if no message came after the one that started it.

    No recorded activity means the state was lost (it outlives every timer otherwise): sending
    the follow-up is the safer error than silently losing it. Outside the service window a text
    would fail with Graph error 131047, so it becomes the template, or nothing.
    """
    if superseded(timer, activity):
        return FiredDecision.SUPERSEDED
    if window_open(timer.message_timestamp, now):
        return FiredDecision.FOLLOW_UP
    return FiredDecision.FOLLOW_UP_TEMPLATE if has_template else FiredDecision.SKIP_WINDOW_CLOSED
