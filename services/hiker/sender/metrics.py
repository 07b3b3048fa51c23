"""Sender metrics (names are what the dashboards and alerts query)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


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
            "Messages Graph accepted, by kind (reply, followup).",
            ["kind"],
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
        self.end_to_end = Histogram(
            "hiker_end_to_end_latency_seconds",
            "From the webhook reaching ingress to Graph accepting the reply.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=registry,
        )
        for kind in ("reply", "followup"):
            self.sent.labels(kind)
