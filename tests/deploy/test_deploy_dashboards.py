"""The Grafana dashboards (charts/hiker/dashboards, used by compose and the chart): the fixed
Prometheus datasource uid, namespace/job templating, queries that name only metrics the services
export (every one of them used), and PromQL that parses."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import COUNTERS, DASHBOARDS, HIKER_METRICS, HISTOGRAMS

pytestmark = pytest.mark.deploy

TITLES = {"hiker-messages.json": "Hiker / Messages", "hiker-timers.json": "Hiker / Timers"}
DATASOURCE_UIDS = {"prometheus", "${datasource}"}
METRIC = re.compile(r"\b((?:hiker|rabbitmq)_[a-z0-9_]+)")


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries() -> Iterator[tuple[str, str, str]]:
    """(dashboard file, panel title, expr) for every panel query."""
    for name, dashboard in dashboards().items():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                yield name, panel["title"], target["expr"]


def base_metric(name: str) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name.removesuffix(suffix) in HISTOGRAMS:
            return name.removesuffix(suffix)
    return name


def test_the_two_dashboards_exist_with_unique_uids() -> None:
    found = dashboards()
    assert {name: d["title"] for name, d in found.items()} == TITLES
    assert len({d["uid"] for d in found.values()}) == len(found)


def test_prometheus_is_referenced_by_its_fixed_uid() -> None:
    for name, dashboard in dashboards().items():
        assert "${DS_" not in json.dumps(dashboard), name
        assert "__inputs" not in dashboard, f"{name}: export without 'share externally'"
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        datasource = variables["datasource"]
        assert datasource["type"] == "datasource"
        assert datasource["query"] == "prometheus"
        assert datasource["current"]["value"] == "prometheus"
        refs = [p.get("datasource") for p in panels(dashboard) if p["type"] != "row"]
        refs += [t.get("datasource") for p in panels(dashboard) for t in p.get("targets", [])]
        refs += [v["datasource"] for v in variables.values() if v["type"] == "query"]
        for ref in refs:
            assert isinstance(ref, dict), (name, ref)
            assert ref == {"type": "prometheus", "uid": ref["uid"]}, (name, ref)
            assert ref["uid"] in DATASOURCE_UIDS, (name, ref)


def test_queries_are_templated_by_namespace_and_job() -> None:
    for name, dashboard in dashboards().items():
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        for var in ("namespace", "job"):
            assert variables[var]["type"] == "query", (name, var)
            assert variables[var]["includeAll"], (name, var)
            # '.*' also matches series without the label, as in compose (no namespace there).
            assert variables[var]["allValue"] == ".*"
    for name, title, expr in queries():
        if "hiker_" in expr:
            assert 'namespace=~"$namespace"' in expr, (name, title)
            assert 'job=~"$job"' in expr, (name, title)
        elif "rabbitmq_" in expr:
            assert 'namespace=~"$namespace"' in expr, (name, title)


def test_queries_name_only_exported_metrics_and_use_them_all() -> None:
    used = set()
    for name, title, expr in queries():
        metrics = {base_metric(m) for m in METRIC.findall(expr)}
        assert metrics, (name, title, expr)
        for metric in metrics:
            assert metric in HIKER_METRICS or metric.startswith("rabbitmq_"), (name, title, metric)
        used |= metrics
    assert not HIKER_METRICS - used, f"not on any dashboard: {sorted(HIKER_METRICS - used)}"
    assert "rabbitmq_queue_messages" in used


def test_counters_are_rated_and_histograms_read_through_buckets() -> None:
    for name, title, expr in queries():
        for counter in COUNTERS & set(METRIC.findall(expr)):
            assert re.search(rf"(rate|increase)\({counter}\b", expr), (name, title, counter)
        for histogram in HISTOGRAMS:
            if histogram in expr:
                assert f"{histogram}_bucket" in expr, (name, title)
                assert "histogram_quantile" in expr, (name, title)


def test_required_panels_are_present() -> None:
    found = dashboards()
    messages = " ".join(e for n, _, e in queries() if n == "hiker-messages.json")
    timers_titles = {p["title"] for p in panels(found["hiker-timers.json"])}
    assert 'rabbitmq_queue_messages{namespace=~"$namespace", queue=~"hiker.*"}' in messages
    lateness = [e for n, _, e in queries() if "hiker_timer_lateness_seconds" in e]
    quantiles = set()
    for expr in lateness:
        match = re.search(r"histogram_quantile\(([\d.]+)", expr)
        assert match, expr
        quantiles.add(match.group(1))
    assert quantiles == {"0.5", "0.9", "0.99"}
    assert {"Pending timers", "Wait queue depth", "Fired queue depth"} <= timers_titles


def test_grid_positions_do_not_overlap() -> None:
    for name, dashboard in dashboards().items():
        taken: set[tuple[int, int]] = set()
        for panel in dashboard["panels"]:
            g = panel["gridPos"]
            assert g["x"] + g["w"] <= 24, (name, panel["title"])
            cells = {
                (x, y)
                for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])
            }
            assert not cells & taken, (name, panel["title"])
            taken |= cells
        ids = [p["id"] for p in panels(dashboard)]
        assert len(ids) == len(set(ids)), name


def concrete(expr: str) -> str:
    """The query as Grafana sends it with 'All' selected over a 1h range."""
    return (
        expr.replace("$__rate_interval", "1m")
        .replace("$__range", "1h")
        .replace("$__interval", "15s")
        .replace("$namespace", ".*")
        .replace("$job", ".*")
    )


def test_every_query_is_valid_promql(promtool: str, tmp_path: Path) -> None:
    rules = [
        {"record": f"hiker:dashboard_query:{i}", "expr": concrete(e)}
        for i, (_, _, e) in enumerate(queries())
    ]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
