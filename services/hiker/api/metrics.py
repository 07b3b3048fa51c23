"""The api's metrics (names are what the dashboards and alerts query)."""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from hiker.api.openapi import document

# What a record is of; series exist before the first of each.
RECORD_KINDS: Final = (
    "message_in",
    "message_out",
    "parked",
    "status",
    "webhook_error",
    "template",
)
# Meta's error codes of failed statuses an operator acts on (docs/troubleshooting.md): series
# exist before the first; others start at their first.
FAILED_CODES: Final = ("131047", "131049", "131026", "131050", "130472", "131051", "none")
# Meta's pricing categories and types (per-message pricing): the series a dashboard sums.
BILLED_CATEGORIES: Final = ("marketing", "utility", "authentication")
BILLED_TYPES: Final = ("regular", "free_customer_service", "free_entry_point")


def route_statuses() -> dict[str, tuple[str, ...]]:
    """Each route, by its pattern (never the path itself: a user's number is in it), and the
    statuses it answers with, as the api's own OpenAPI description declares them."""
    return {
        f"{method.upper()} {path}": tuple(operation["responses"])
        for path, operations in document()["paths"].items()
        for method, operation in operations.items()
        if method in _METHODS  # a path item also holds its shared "parameters"
    }


_METHODS: Final = frozenset({"get", "put", "post", "delete", "patch", "head", "options"})


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.records = Counter(
            "hiker_api_records_written",
            "Records written to the database, by kind (message_in, message_out, parked, "
            "status, webhook_error).",
            ["kind"],
            registry=registry,
        )
        self.duplicates = Counter(
            "hiker_api_records_duplicate",
            "Events already recorded (a redelivery or a replay), by kind: nothing written.",
            ["kind"],
            registry=registry,
        )
        self.lag = Histogram(
            "hiker_api_recording_lag_seconds",
            "From the event (received, sent, parked) to its record being written.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
            registry=registry,
        )
        self.requests = Counter(
            "hiker_api_requests",
            "HTTP requests by route and status.",
            ["route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "hiker_api_request_latency_seconds",
            "HTTP request duration by route.",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )
        self.handoffs = Counter(
            "hiker_handoffs",
            "Conversations handed to a person, by the way in (reason: api, action, echo, "
            "handover).",
            ["reason"],
            registry=registry,
        )
        self.failed = Counter(
            "hiker_messages_failed",
            "Sends Meta reported failed after accepting them (a failed status), by Meta's "
            "error code; each message once.",
            ["code"],
            registry=registry,
        )
        self.billed = Counter(
            "hiker_messages_billed",
            "Messages Meta priced (a status's pricing), once each, by category and type "
            "(regular: charged; free_customer_service, free_entry_point: free).",
            ["category", "type"],
            registry=registry,
        )
        self.templates = Gauge(
            "hiker_template_status",
            "1 for each message template's current status (APPROVED, PAUSED, DISABLED, ...), as "
            "Meta's webhooks last reported it; read from the database every minute.",
            ["name", "language", "status"],
            registry=registry,
        )
        self.handoffs.labels("api")
        for code in FAILED_CODES:
            self.failed.labels(code)
        for category in BILLED_CATEGORIES:
            for type_ in BILLED_TYPES:
                self.billed.labels(category, type_)
        for kind in RECORD_KINDS:
            self.records.labels(kind)
            self.duplicates.labels(kind)
        for route, statuses in route_statuses().items():
            self.latency.labels(route)
            for status in statuses:
                self.requests.labels(route, status)
