from __future__ import annotations

from hiker.conversation.timers import (
    SERVICE_WINDOW_SECONDS,
    Activity,
    FiredDecision,
    decide_fired,
    silenced,
    start_reminder,
    start_timer,
    window_open,
)
from hiker.core.ownership import Ownership
from hiker.core.requests import Remind
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


def test_a_handoff_silences_timers_while_it_lasts_and_drops_older_followups_after() -> None:
    followup = start_timer("pn", "user", "wamid.1", now=100.0, idle_timeout_seconds=60)
    reminder = start_reminder("pn", "user", "wamid.1", 100.0, Remind(after_seconds=60, key="cart"))
    owned = Activity("wamid.1", 100.0, owner_until=200.0, handed_at=120.0)
    # While a person owns the conversation, nothing the bot set fires.
    assert silenced(followup, owned, now=160.0)
    assert silenced(reminder, owned, now=160.0)
    # Once it ends (or is given back), the follow-up set before the person took over stays
    # dropped: its idle period was theirs. A reminder fires.
    assert silenced(followup, owned, now=200.0)
    assert not silenced(reminder, owned, now=200.0)
    given_back = Activity("wamid.1", 100.0, owner_until=None, handed_at=120.0)
    assert silenced(followup, given_back, now=160.0)
    # A follow-up set after the handoff, and one of a conversation never handed over, fire.
    later = start_timer("pn", "user", "wamid.2", now=130.0, idle_timeout_seconds=60)
    assert not silenced(later, given_back, now=190.0)
    assert not silenced(followup, Activity("wamid.1", 100.0), now=160.0)
    assert not silenced(followup, None, now=160.0)


def test_ownership_reads_what_redis_returns() -> None:
    owned = Ownership.of(b"200.5", b"billing", b"100.0")
    assert (owned.until, owned.reason, owned.handed_at) == (200.5, "billing", 100.0)
    assert owned.human(200.0)
    assert not owned.human(200.5)  # ends by itself at until
    assert Ownership.of(None, None) == Ownership()
    assert not Ownership.of("", "").human(0.0)
    assert Ownership.of("not a number", None).until is None
