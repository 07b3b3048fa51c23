"""``hiker events`` metrics, per endpoint by its name (``core.endpoints``: host and a hash, never
a URL). Every series an alert or a dashboard reads exists from the start, at 0."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram

from hiker.events.delivery import PERMANENT, RETRIES_EXHAUSTED
from hiker.events.model import EVENT_TYPES

# How POSTs ended, by class: the label values are these and nothing else.
ANSWER_CLASSES: Final = ("2xx", "3xx", "4xx", "5xx", "timeout", "connection_error")


def answer_class(label: str) -> str:
    """``"503"`` → ``"5xx"``; ``"timeout"`` stays."""
    if label.isdigit() and len(label) == 3 and label[0] in "2345":
        return f"{label[0]}xx"
    return label if label in ANSWER_CLASSES else "connection_error"


class EventsMetrics:
    def __init__(self, registry: CollectorRegistry, endpoints: Sequence[str]) -> None:
        self.stamped = Counter(
            "hiker_events_stamped",
            "Events given their id and seq, by type, then queued for every endpoint.",
            ["type"],
            registry=registry,
        )
        self.skipped = Counter(
            "hiker_events_skipped",
            "Facts that make no event (a status that names no user).",
            registry=registry,
        )
        self.delivered = Counter(
            "hiker_events_delivered",
            "Events an endpoint answered 2xx to.",
            ["endpoint"],
            registry=registry,
        )
        self.retried = Counter(
            "hiker_events_retried",
            "Events scheduled for another attempt (5xx, 408, 429, timeout, refused).",
            ["endpoint"],
            registry=registry,
        )
        self.parked = Counter(
            "hiker_events_parked",
            "Events parked in hiker.events.parked: permanent (a 4xx) or retries_exhausted.",
            ["endpoint", "reason"],
            registry=registry,
        )
        self.answers = Counter(
            "hiker_events_answers",
            "POSTs by how they ended: 2xx, 3xx, 4xx, 5xx, timeout, connection_error.",
            ["endpoint", "answer"],
            registry=registry,
        )
        self.latency = Histogram(
            "hiker_events_post_seconds",
            "Duration of a POST to an endpoint, answered or not.",
            ["endpoint"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        for type_ in EVENT_TYPES:
            self.stamped.labels(type_)
        for name in endpoints:
            self.delivered.labels(name)
            self.retried.labels(name)
            self.latency.labels(name)
            for reason in (PERMANENT, RETRIES_EXHAUSTED):
                self.parked.labels(name, reason)
            for answer in ANSWER_CLASSES:
                self.answers.labels(name, answer)
