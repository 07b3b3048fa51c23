"""Sender metrics (names are what the dashboards and alerts query)."""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram

from hiker.sender.retry import NO_TOKEN, TRANSIENT_CODES

# Park reasons an operator acts on (token expired, outside the window, undeliverable, bad
# parameter, recipient not allowed, an authentication template to a business-scoped user id, a
# template paused or disabled,
# in doubt, HTTP-level): series exist before the first.
WATCHED_PERMANENT_CODES: Final = (
    "190",
    "131047",
    "131026",
    "100",
    "131030",
    "131062",
    "132015",
    "132016",
    "unknown",
    "none",
)


class SenderMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.graph_requests = Counter(
            "hiker_graph_requests",
            "Graph API calls by HTTP status (or timeout / connection_error) and Graph error code.",
            ["status", "code"],
            registry=registry,
        )
        self.graph_latency = Histogram(
            "hiker_graph_latency_seconds",
            "Graph API call duration.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.sent = Counter(
            "hiker_messages_sent",
            "Messages (actions) Graph accepted, by kind (reply, followup, api).",
            ["kind"],
            registry=registry,
        )
        self.receipts = Counter(
            "hiker_read_receipts",
            "Read receipts (and typing indicators) by outcome: sent, stale (dropped: older than "
            "their use), failed (dropped: never retried).",
            ["outcome"],
            registry=registry,
        )
        self.retries = Counter(
            "hiker_send_retries",
            "Sends scheduled for another attempt, by Graph error code (none: HTTP-level failure).",
            ["code"],
            registry=registry,
        )
        self.parked = Counter(
            "hiker_messages_parked",
            "Sends parked in hiker.sender.parked, by Graph error code.",
            ["code"],
            registry=registry,
        )
        self.deduplicated = Counter(
            "hiker_sends_deduplicated",
            "Send commands dropped because the same idempotency key was already sent.",
            registry=registry,
        )
        self.deferred = Counter(
            "hiker_sends_deferred",
            "Sends whose pacing slot was further out than a claim is held: they waited for it "
            "in a delay queue (no failure; the attempt is not counted).",
            registry=registry,
        )
        self.end_to_end = Histogram(
            "hiker_end_to_end_latency_seconds",
            "From the webhook reaching ingress to Graph accepting the reply.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        # Zero-valued series from the start, so that panels and rate() alerts work from the
        # first scrape (Prometheus' instrumentation guidance) for the values known in advance.
        for kind in ("reply", "followup", "api", "broadcast", "marketing"):
            self.sent.labels(kind)
        for outcome in ("sent", "stale", "failed"):
            self.receipts.labels(outcome)
        for transient in sorted(TRANSIENT_CODES):
            self.retries.labels(str(transient))
        self.retries.labels("none")
        for permanent in WATCHED_PERMANENT_CODES:
            self.parked.labels(permanent)
        # A call Graph accepted, and the calls that got no answer: the error-rate alert's
        # denominator and the failures it counts exist before the first call. Graph's own
        # errors carry (status, code) pairs too many to list; each starts at its first.
        for status in ("200", "timeout", "connection_error", NO_TOKEN):
            self.graph_requests.labels(status, "none")
