"""What an endpoint's answer means for an event (retry, park, done) and how long to wait."""

from __future__ import annotations

import pytest

from hiker.events.delivery import (
    MAX_DELAY_SECONDS,
    PERMANENT,
    RETRIES_EXHAUSTED,
    Answer,
    Verdict,
    decide,
    retry_after,
    retry_delay_ms,
    verdict_of,
)

DAY = 24 * 3600.0


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        (Answer(200), Verdict.DELIVERED),
        (Answer(202), Verdict.DELIVERED),
        (Answer(204), Verdict.DELIVERED),
        (Answer(500), Verdict.RETRY),
        (Answer(502), Verdict.RETRY),
        (Answer(503), Verdict.RETRY),
        (Answer(408), Verdict.RETRY),
        (Answer(429), Verdict.RETRY),
        (Answer(None, failure="timeout"), Verdict.RETRY),
        (Answer(None, failure="connection_error"), Verdict.RETRY),
        (Answer(400), Verdict.PARK),
        (Answer(401), Verdict.PARK),
        (Answer(403), Verdict.PARK),
        (Answer(404), Verdict.PARK),
        (Answer(410), Verdict.PARK),
        (Answer(422), Verdict.PARK),
        # A redirect is not followed: the endpoint should be configured where it lives.
        (Answer(301), Verdict.PARK),
    ],
)
def test_verdicts(answer: Answer, verdict: Verdict) -> None:
    assert verdict_of(answer) is verdict


def test_delays_double_from_one_second_to_fifteen_minutes() -> None:
    delays = [retry_delay_ms(attempt, None) for attempt in range(1, 16)]
    assert delays[:4] == [1000, 2000, 4000, 8000]
    assert delays == sorted(delays)
    assert delays[-1] >= MAX_DELAY_SECONDS * 1000
    assert delays[-1] < MAX_DELAY_SECONDS * 1000 * 1.2
    # Few distinct delays: each is a wait queue per endpoint.
    assert len(set(delays)) <= 12


def test_retry_after_is_honoured_never_shortened_and_capped() -> None:
    assert retry_delay_ms(1, 30) >= 30_000
    assert retry_delay_ms(1, 30) < 30_000 * 1.2
    assert retry_delay_ms(5, 1) == retry_delay_ms(5, None)  # the backoff is longer already
    assert retry_delay_ms(1, 10 * DAY) < MAX_DELAY_SECONDS * 1000 * 1.2


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("0", 0.0),
        ("-1", None),
        ("Wed, 21 Oct 2026 07:28:00 GMT", None),
        (None, None),
    ],
)
def test_retry_after_header(header: str | None, seconds: float | None) -> None:
    assert retry_after(header) == seconds


def test_an_answer_that_says_not_now_is_retried_within_the_window() -> None:
    decision = decide(
        Answer(503), attempt=3, first_attempt_at=1000.0, now=1010.0, window_seconds=DAY
    )
    assert decision.verdict is Verdict.RETRY
    assert decision.delay_ms == 4000


def test_a_retry_that_would_land_past_the_window_parks_instead() -> None:
    decision = decide(
        Answer(None, failure="timeout"),
        attempt=20,
        first_attempt_at=0.0,
        now=DAY - 60,
        window_seconds=DAY,
    )
    assert (decision.verdict, decision.reason) == (Verdict.PARK, RETRIES_EXHAUSTED)


def test_a_permanent_refusal_parks_at_once_whatever_the_window() -> None:
    decision = decide(Answer(410), attempt=1, first_attempt_at=0.0, now=0.0, window_seconds=DAY)
    assert (decision.verdict, decision.reason) == (Verdict.PARK, PERMANENT)


def test_answer_labels() -> None:
    assert Answer(503).label == "503"
    assert Answer(None, failure="timeout").label == "timeout"
