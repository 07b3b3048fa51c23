"""``ParkedHeaders``: the park header contract between the sender and ``hiker parked``."""

from __future__ import annotations

import json

from hiker.core import topology
from hiker.core.parked_headers import ParkedHeaders


def test_headers_are_written_as_the_sender_writes_them() -> None:
    headers = ParkedHeaders(
        attempt=3,
        reason="permanent",
        graph_status="401",
        graph_code="190",
        graph_error={"code": 190, "message": "expired"},
        parked_at=1764612345.678901,
    ).to_headers()
    assert headers == {
        "x-hiker-attempt": 3,
        "x-hiker-parked-reason": "permanent",
        "x-hiker-graph-status": "401",
        "x-hiker-graph-code": "190",
        "x-hiker-graph-error": json.dumps({"code": 190, "message": "expired"}),
        "x-hiker-parked-at": "1764612345.679",
    }
    assert topology.HEADER_PARKED_AT in headers


def test_headers_read_back_as_written() -> None:
    written = ParkedHeaders(
        attempt=1,
        reason="in_doubt",
        graph_status="unknown",
        graph_code="unknown",
        graph_error=None,
        parked_at=1764612345.5,
    )
    assert ParkedHeaders.from_headers(written.to_headers()) == written


def test_missing_or_odd_headers_read_as_placeholders() -> None:
    assert ParkedHeaders.from_headers({}) == ParkedHeaders(
        attempt=1, reason="unknown", graph_status="none", graph_code="none"
    )
    odd = ParkedHeaders.from_headers(
        {
            "x-hiker-attempt": True,
            "x-hiker-parked-reason": b"permanent",
            "x-hiker-graph-error": "not json",
            "x-hiker-parked-at": 1764612345,
        }
    )
    assert type(odd.attempt) is int
    assert (odd.attempt, odd.reason, odd.graph_error, odd.parked_at) == (
        1,
        "permanent",
        None,
        1764612345.0,
    )
