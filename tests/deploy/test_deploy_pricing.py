"""The price table that turns billable messages into money: the same in the chart (its values,
rendered as recording rules in the PrometheusRule) and in compose (deploy/prometheus/prices.yml),
and the dashboard's cost query computing the money from it, checked by promtool."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_values import DEFAULTS, with_overrides
from deploy_support import DASHBOARDS, NAMESPACE, PROMETHEUS, of_kind, render

pytestmark = pytest.mark.deploy

PRICE = "hiker:price_per_message"


def prices(groups: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """(category, currency) → the expression of its price series."""
    return {
        (r["labels"]["category"], r["labels"]["currency"]): r["expr"]
        for g in groups
        for r in g["rules"]
        if r.get("record") == PRICE
    }


def chart_groups(**overrides: Any) -> list[dict[str, Any]]:
    values = with_overrides(DEFAULTS, **{"prometheusRule.enabled": True, **overrides})
    (rule,) = of_kind(render(values), "PrometheusRule")
    groups: list[dict[str, Any]] = rule["spec"]["groups"]
    return groups


def test_the_chart_and_compose_price_the_same_categories_alike(promtool: str) -> None:
    groups = chart_groups()
    compose = yaml.safe_load((PROMETHEUS / "prices.yml").read_text())["groups"]
    assert prices(groups) == prices(compose)
    assert {category for category, _ in prices(groups)} == {
        "marketing",
        "utility",
        "authentication",
    }
    # Each install's prices are its own: the dashboard joins on the namespace.
    assert {
        r["labels"]["namespace"] for g in groups for r in g["rules"] if r.get("record") == PRICE
    } == {NAMESPACE}
    result = subprocess.run(
        [promtool, "check", "rules", str(PROMETHEUS / "prices.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "prices.yml" in (PROMETHEUS / "prometheus.yml").read_text()


def test_other_prices_and_currency_come_from_the_values_or_none_at_all() -> None:
    groups = chart_groups(
        **{"pricing.currency": "EUR", "pricing.perMessage": {"marketing": 0.0529}}
    )
    # Helm merges the maps: the categories not given keep their defaults, in the new currency.
    assert prices(groups) == {
        ("marketing", "EUR"): "vector(0.0529)",
        ("utility", "EUR"): "vector(0.004)",
        ("authentication", "EUR"): "vector(0.0135)",
    }
    assert prices(chart_groups(**{"pricing.enabled": False})) == {}


def cost_query() -> str:
    dashboard = json.loads((DASHBOARDS / "hiker-messages.json").read_text())
    (panel,) = [p for p in dashboard["panels"] if p["title"].startswith("What it costs")]
    (target,) = panel["targets"]
    return str(target["expr"]).replace("$namespace", ".*").replace("$job", ".*")


def test_the_cost_panel_multiplies_charged_messages_by_their_price(
    promtool: str, tmp_path: Path
) -> None:
    # Every hour 23 charged marketing messages, 60 utility ones and 5 free ones, for two days.
    series = 'hiker_messages_billed_total{{job="hiker-api", category="{}", type="{}"}}'
    tests = {
        "rule_files": [str(PROMETHEUS / "prices.yml")],
        "evaluation_interval": "1h",
        "tests": [
            {
                "interval": "1h",
                "input_series": [
                    {"series": series.format("marketing", "regular"), "values": "0+23x48"},
                    {"series": series.format("utility", "regular"), "values": "0+60x48"},
                    {
                        "series": series.format("utility", "free_customer_service"),
                        "values": "0+5x48",
                    },
                ],
                "promql_expr_test": [
                    {
                        "expr": f"round({cost_query()} * 1000)",
                        "eval_time": "48h",
                        "exp_samples": [
                            # 552 marketing messages a day at 0.025, 1440 utility at 0.004.
                            {"labels": '{category="marketing", currency="USD"}', "value": 13800},
                            {"labels": '{category="utility", currency="USD"}', "value": 5760},
                        ],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "cost-test.yml"
    path.write_text(yaml.safe_dump(tests))
    result = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
