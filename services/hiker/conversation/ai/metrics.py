"""The AI responder's metrics (names are what the AI dashboard row and its alert query)."""

from __future__ import annotations

from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Histogram

from hiker.core.ai_model import Outcome

# A model answers in seconds, sometimes in a minute (a long tool round on a slow model).
LATENCY_BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0, 120.0)


class AIMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "hiker_ai_requests",
            "Calls to the model (chat completions and transcriptions), by how each ended.",
            ["outcome"],
            registry=registry,
        )
        self.tokens = Counter(
            "hiker_ai_tokens",
            "Tokens the model's responses reported in usage, by kind (prompt, completion).",
            ["kind"],
            registry=registry,
        )
        self.latency = Histogram(
            "hiker_ai_latency_seconds",
            "How long one call to the model took, whatever its outcome.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.debounced = Counter(
            "hiker_ai_debounced_messages",
            "Messages answered together with a later one of the same burst (one call, one reply).",
            registry=registry,
        )
        self.over_budget = Counter(
            "hiker_ai_over_budget",
            "Turns not sent to the model because a daily token budget was spent, by budget.",
            ["budget"],
            registry=registry,
        )
        # Zero-valued series from the start: increase() and the alert see a pod's first event.
        for outcome in get_args(Outcome):
            self.requests.labels(outcome)
        for kind in ("prompt", "completion"):
            self.tokens.labels(kind)
        for budget in ("user", "number"):
            self.over_budget.labels(budget)
