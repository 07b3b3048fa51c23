from __future__ import annotations

from hiker.conversation.timers import (
    Activity,
    FiredDecision,
    decide_fired,
    delay_ms,
    start_timer,
)


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
    assert decide_fired(timer, activity) is FiredDecision.FOLLOW_UP


def test_timer_of_an_older_message_is_superseded() -> None:
    timer = start_timer("pn", "user", "wamid.1", now=0, idle_timeout_seconds=1)
    activity = Activity(last_wamid="wamid.2", last_received_at=1)
    assert decide_fired(timer, activity) is FiredDecision.SUPERSEDED


def test_lost_state_errs_on_sending_the_followup() -> None:
    timer = start_timer("pn", "user", "wamid.1", now=0, idle_timeout_seconds=1)
    assert decide_fired(timer, None) is FiredDecision.FOLLOW_UP
