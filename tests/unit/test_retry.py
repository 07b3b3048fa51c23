from __future__ import annotations

import pytest

from hiker.sender.retry import (
    GraphOutcome,
    Verdict,
    decide,
    ladder_ms,
    retry_delay_ms,
    verdict_of,
)


@pytest.mark.parametrize(
    ("outcome", "verdict"),
    [
        (GraphOutcome(200, message_id="wamid.X"), Verdict.SENT),
        (GraphOutcome(500), Verdict.RETRY),
        (GraphOutcome(503, error_code=2), Verdict.RETRY),
        (GraphOutcome(429), Verdict.RETRY),
        (GraphOutcome(None, failure="timeout"), Verdict.RETRY),
        (GraphOutcome(None, failure="connection_error"), Verdict.RETRY),
        (GraphOutcome(400, error_code=4), Verdict.RETRY),
        (GraphOutcome(400, error_code=80007), Verdict.RETRY),
        (GraphOutcome(400, error_code=130429), Verdict.RETRY),
        (GraphOutcome(400, error_code=131056), Verdict.RETRY),
        (GraphOutcome(400, error_code=131057), Verdict.RETRY),
        (GraphOutcome(401, error_code=190), Verdict.PARK),
        (GraphOutcome(400, error_code=131047), Verdict.PARK),
        (GraphOutcome(400, error_code=131026), Verdict.PARK),
        (GraphOutcome(400, error_code=100), Verdict.PARK),
        (GraphOutcome(400, error_code=131062), Verdict.PARK),
        (GraphOutcome(404), Verdict.PARK),
        # 200 without a message id is not a send Graph vouched for.
        (GraphOutcome(200), Verdict.PARK),
    ],
)
def test_classification(outcome: GraphOutcome, verdict: Verdict) -> None:
    assert verdict_of(outcome) is verdict


def test_retries_stop_at_the_attempt_bound() -> None:
    assert decide(GraphOutcome(500), attempt=7, max_attempts=8) is Verdict.RETRY
    assert decide(GraphOutcome(500), attempt=8, max_attempts=8) is Verdict.PARK


def test_delays_grow_exponentially_with_jitter_within_half_to_full() -> None:
    for attempt in range(1, 8):
        base_ms = 1000 * 2 ** (attempt - 1)
        low = retry_delay_ms(attempt, 0.0, None)
        high = retry_delay_ms(attempt, 0.999, None)
        # Snapping to the ladder moves a delay by at most one ~19 % step either way.
        assert base_ms / 2 / 1.2 <= low <= high <= base_ms * 1.2
        assert low < high


def test_retry_after_is_honoured_and_never_undercut() -> None:
    assert retry_delay_ms(1, 0.0, 30) >= 30_000
    assert retry_delay_ms(1, 0.0, 30) <= 30_000 * 1.2


def test_delays_come_from_a_small_fixed_set_of_queues() -> None:
    delays = {
        retry_delay_ms(attempt, unit / 100, retry_after)
        for attempt in range(1, 30)
        for unit in range(100)
        for retry_after in (None, 0.3, 7, 61, 3600)
    }
    assert len(delays) <= 50
    assert max(delays) <= 900_000 * 1.2


def test_ladder_round_up_never_waits_less() -> None:
    for seconds in (0.3, 1, 1.1, 7, 59.9, 300):
        assert ladder_ms(seconds, round_up=True) >= seconds * 1000
