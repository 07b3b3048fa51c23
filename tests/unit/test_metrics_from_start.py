"""Every labelled metric a dashboard or an alert queries has its known label values from the
first scrape: a series born with its first event has no earlier sample, so rate() and
increase() miss that event, and a panel shows "no data" until then."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

from hiker.api.broadcast_routes import add_broadcast_routes
from hiker.api.metrics import ApiMetrics, route_statuses
from hiker.api.routes import add_api_routes
from hiker.conversation.metrics import ConversationMetrics
from hiker.core.ai_model import Outcome as AIOutcome
from hiker.core.dependencies import DependencyMetrics
from hiker.events.metrics import EventsMetrics
from hiker.ingress.ingestor import Outcome
from hiker.ingress.metrics import OUTCOMES, IngressMetrics
from hiker.sender.metrics import SenderMetrics
from tests.support import samples

ROOT = Path(__file__).resolve().parents[2]
SELECTOR = re.compile(r"\b(hiker_[a-z0-9_]+)(?:\{([^}]*)\})?")
MATCHER = re.compile(r'(\w+)\s*(=~|=)\s*"([^"]*)"')
# Label values that come from configuration or from the event itself, not from the code.
OPEN_ENDED = {
    "hiker_replies_emitted_total": "the rules' names are the rules file's",
    "hiker_dependency_down": "one series per (dependency, error class) while it fails",
    "hiker_dependency_failures_total": "one series per (dependency, error class) that failed",
    "hiker_template_status": "one series per template Meta's webhooks described",
}


def queries() -> Iterator[str]:
    for path in sorted((ROOT / "charts" / "hiker" / "dashboards").glob("*.json")):
        text = json.dumps(json.loads(path.read_text()))
        yield from (m.group(1) for m in re.finditer(r'"expr": "((?:[^"\\]|\\.)*)"', text))
    for line in (ROOT / "deploy" / "prometheus" / "alerts.yml").read_text().splitlines():
        if "hiker_" in line:
            yield line


def wanted() -> dict[str, set[tuple[str, str]]]:
    """Sample name → the (label, value) pairs the queries select it by."""
    found: dict[str, set[tuple[str, str]]] = {}
    for expr in queries():
        expr = expr.replace('\\"', '"')
        for match in SELECTOR.finditer(expr):
            pairs = found.setdefault(match.group(1), set())
            for label, op, value in MATCHER.findall(match.group(2) or ""):
                if label in ("namespace", "job"):
                    continue
                values = value.split("|") if op == "=~" else [value]
                pairs |= {(label, v) for v in values}
    return found


def exported_at_start() -> str:
    """Every service's page at start, one after the other (each service has its registry: two
    may export a metric of one name, as the api and conversation do hiker_handoffs_total)."""
    pages = []
    for metrics in (IngressMetrics, ConversationMetrics, SenderMetrics, ApiMetrics):
        registry = CollectorRegistry()
        metrics(registry)
        pages.append(generate_latest(registry).decode())
    registry = CollectorRegistry()
    DependencyMetrics(registry)
    # An endpoint's series start with the service, one per configured endpoint.
    EventsMetrics(registry, ["backend-1a2b3c"])
    pages.append(generate_latest(registry).decode())
    return "".join(pages)


def labelled(page: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"^(hiker_\w+)\{", page, re.M)}


@pytest.mark.parametrize("name", sorted(set(wanted()) - set(OPEN_ENDED)))
def test_a_queried_metric_has_its_series_before_the_first_event(name: str) -> None:
    page = exported_at_start()
    families = {m.group(1) for m in re.finditer(r"^# TYPE (hiker_\w+) ", page, re.M)}
    base = re.sub(r"_(total|bucket|count|sum)$", "", name)
    assert base in families or name in families, f"{name} is not exported"
    series = samples(page, name)
    assert series, f"{name}: no series until its first event"
    for label, value in wanted()[name]:
        assert samples(page, name, **{label: value}), f"{name}{{{label}={value!r}}} absent"


def test_every_api_route_and_status_counts_from_zero() -> None:
    app = web.Application()
    add_api_routes(app)
    add_broadcast_routes(app)
    served = {
        f"{route.method} {route.resource.canonical}"
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    assert set(route_statuses()) == served, "the OpenAPI description and the routes differ"
    page = exported_at_start()
    for route, statuses in route_statuses().items():
        for status in statuses:
            assert samples(page, "hiker_api_requests_total", route=route, status=status)


def test_every_ingress_outcome_counts_from_zero() -> None:
    assert {outcome.name.lower() for outcome in Outcome} <= set(OUTCOMES)
    page = exported_at_start()
    for outcome in OUTCOMES:
        assert samples(page, "hiker_webhooks_received_total", outcome=outcome)


def test_every_ai_outcome_token_kind_and_budget_counts_from_zero() -> None:
    page = exported_at_start()
    for outcome in get_args(AIOutcome):
        assert samples(page, "hiker_ai_requests_total", outcome=outcome)
    for kind in ("prompt", "completion"):
        assert samples(page, "hiker_ai_tokens_total", kind=kind)
    for budget in ("user", "number"):
        assert samples(page, "hiker_ai_over_budget_total", budget=budget)
    assert samples(page, "hiker_ai_debounced_messages_total")
