from __future__ import annotations

from hiker.conversation.timers import (
    SERVICE_WINDOW_SECONDS,
    Activity,
    FiredDecision,
    decide_fired,
    start_timer,
    window_open,
)
from hiker.core.topology import delay_ms

DAY = SERVICE_WINDOW_SECONDS


def test_delay_is_whole_milliseconds() -> None:
    assert delay_ms(600) == 600_000
    assert delay_ms(1.5) == 1_500
    assert delay_ms(0.0001) == 1


def test_timer_is_due_one_idle_timeout_after_it_starts() -> None:
    timer = start_timer("pn", "user", "wamid.1", now=1000.0, idle_timeout_seconds=600)
    assert timer.due_at == 1600.0
    assert timer.scheduled_at == 1000.0


def test_timer_of_the_latest_message_fires() -> None:
    timer = start_timer("pn", "user", "wamid.2", now=0, idle_timeout_seconds=1)
    activity = Activity(last_wamid="wamid.2", last_received_at=0)
    assert decide_fired(timer, activity, now=1, has_template=False) is FiredDecision.FOLLOW_UP


def test_timer_of_an_older_message_is_superseded() -> None:
    timer = start_timer("pn", "user", "wamid.1", now=0, idle_timeout_seconds=1)
    activity = Activity(last_wamid="wamid.2", last_received_at=1)
    assert decide_fired(timer, activity, now=1, has_template=True) is FiredDecision.SUPERSEDED


def test_lost_state_errs_on_sending_the_followup() -> None:
    timer = start_timer("pn", "user", "wamid.1", now=0, idle_timeout_seconds=1)
    assert decide_fired(timer, None, now=1, has_template=False) is FiredDecision.FOLLOW_UP


def test_window_is_open_for_a_day_after_the_users_message() -> None:
    assert window_open(1000, 1000 + DAY - 1)
    assert not window_open(1000, 1000 + DAY)
    assert window_open(None, 10**12)  # unknown time: no reason to hold back


def test_followup_outside_the_window_becomes_the_template_or_nothing() -> None:
    timer = start_timer(
        "pn", "user", "wamid.1", now=0, idle_timeout_seconds=DAY + 60, message_timestamp=0
    )
    activity = Activity(last_wamid="wamid.1", last_received_at=0)
    late = timer.due_at
    assert decide_fired(timer, activity, late, True) is FiredDecision.FOLLOW_UP_TEMPLATE
    assert decide_fired(timer, activity, late, False) is FiredDecision.SKIP_WINDOW_CLOSED
    superseding = Activity(last_wamid="wamid.2", last_received_at=1)
    assert decide_fired(timer, superseding, late, True) is FiredDecision.SUPERSEDED
