"""Ingress metrics (names are what the dashboards and alerts query)."""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram

# Every outcome a webhook request can have (the ingestor's Outcome, plus what the HTTP edge
# decides alone), and every kind of event published: their series exist from the start, so
# rate() and the alerts on unavailable and bad signatures see a pod's first one.
OUTCOMES: Final = (
    "accepted",
    "verified",
    "verify_rejected",
    "missing_signature",
    "bad_signature",
    "malformed",
    "too_large",
    "unavailable",
)
EVENT_KINDS: Final = ("message", "status", "error", "change", "template", "unknown")


class IngressMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.webhooks = Counter(
            "hiker_webhooks_received",
            "Webhook requests by outcome (accepted, verified, verify_rejected, "
            "missing_signature, bad_signature, malformed, too_large, body_timeout, busy, "
            "unavailable).",
            ["outcome"],
            registry=registry,
        )
        self.events = Counter(
            "hiker_events_published",
            "Events published to the broker and confirmed, by kind.",
            ["kind"],
            registry=registry,
        )
        self.publish_latency = Histogram(
            "hiker_publish_latency_seconds",
            "Time from a verified webhook to the broker's last confirm for it.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )
        self._outcomes: dict[str, Counter] = {}
        for outcome in OUTCOMES:
            self.outcome(outcome)
        for kind in EVENT_KINDS:
            self.events.labels(kind)

    def outcome(self, name: str) -> Counter:
        """``webhooks.labels(name)``, resolved once per outcome (it is called per request)."""
        child = self._outcomes.get(name)
        if child is None:
            child = self._outcomes[name] = self.webhooks.labels(name)
        return child
