"""charts/hiker's NetworkPolicies (every pod covered, in and out) and its alert rules, kept in
step with the compose stack's."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from chart_values import (
    ALL_FEATURES,
    CHART_VALUES,
    DEFAULTS,
    admitted,
    policies_by_component,
    reachable_ports,
    with_overrides,
)
from deploy_support import (
    COMPONENTS,
    NAMESPACE,
    OPTIONAL_COMPONENTS,
    PROMETHEUS,
    of_kind,
    render,
)

pytestmark = pytest.mark.deploy


EGRESS_PORTS = {
    "ingress": {53, 5672, 5671},
    # 443: Graph, for a bot's media downloads.
    "conversation": {53, 5672, 5671, 6379, 26379, 443},
    "sender": {53, 5672, 5671, 6379, 26379, 443},
    # Redis: handoffs are written to the conversation's state there.
    "api": {53, 5672, 5671, 5432, 6379, 26379},
}


@pytest.mark.parametrize("values", [DEFAULTS, ALL_FEATURES], ids=["defaults", "all-features"])
def test_every_pod_is_covered_by_a_network_policy_in_and_out(values: dict[str, Any]) -> None:
    objects = render(values)
    policies = of_kind(objects, "NetworkPolicy")
    for deployment in of_kind(objects, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [
            p for p in policies if p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(covering) == 1, deployment["metadata"]["name"]
        assert covering[0]["spec"]["policyTypes"] == ["Ingress", "Egress"]
    for component, spec in policies_by_component(objects).items():
        assert reachable_ports(spec) == EGRESS_PORTS[component], component


def test_network_policies_admit_metrics_from_prometheus_api_from_clients_webhook_from_all() -> None:
    net = CHART_VALUES["networkPolicy"]
    for values in (DEFAULTS, ALL_FEATURES):
        wanted = {**net, **values.get("networkPolicy", {})}
        api = {
            "api.enabled": True,
            "secret.apiToken": "placeholder-api-token",
            "secret.databaseUrl": "postgresql://hiker:pw@db/hiker",
        }
        objects = render(with_overrides(values, **api))
        assert set(policies_by_component(objects)) == {*COMPONENTS, *OPTIONAL_COMPONENTS}
        for component, spec in policies_by_component(objects).items():
            ports = admitted(spec)
            assert ports.pop("metrics") == wanted["metricsFrom"], component
            if component == "ingress":
                assert ports.pop("webhook") is None  # Meta, from addresses that change
            if component == "api":
                assert ports.pop("http") == wanted["apiFrom"]
            assert ports == {}, component
    prometheus = net["metricsFrom"][0]["podSelector"]["matchLabels"]
    assert prometheus == {"app.kubernetes.io/name": "prometheus"}


def test_an_empty_peer_list_closes_the_port_and_egress_is_narrowed_by_peers() -> None:
    values = with_overrides(
        DEFAULTS,
        **{
            "api.enabled": True,
            "secret.apiToken": "placeholder-api-token",
            "secret.databaseUrl": "postgresql://hiker:pw@db/hiker",
            "networkPolicy.apiFrom": [],
            "networkPolicy.metricsFrom": [],
            "networkPolicy.egress.rabbitmq.to": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mq"}}}
            ],
        },
    )
    policies = policies_by_component(render(values))
    assert admitted(policies["api"]) == {}
    assert admitted(policies["ingress"]) == {"webhook": None}
    for spec in policies.values():
        (amqp,) = [rule for rule in spec["egress"] if rule["ports"][0]["port"] == 5672]
        assert amqp["to"] == values["networkPolicy"]["egress"]["rabbitmq"]["to"]
        assert all("to" not in rule for rule in spec["egress"] if rule is not amqp)


def test_a_destination_a_service_names_must_be_defined() -> None:
    values = with_overrides(DEFAULTS, **{"conversation.egressTo": ["rabbitmq", "openai"]})
    with pytest.raises(helm.HelmError, match=r'conversation.egressTo names "openai"'):
        render(values)
    values = with_overrides(
        values,
        **{"networkPolicy.egress.openai": {"to": [], "ports": [{"port": 443, "protocol": "TCP"}]}},
    )
    assert 443 in reachable_ports(policies_by_component(render(values))["conversation"])


def _alerts(groups: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}


def _normalise(expr: str) -> str:
    expr = re.sub(rf'namespace="{NAMESPACE}",\s*', "", expr)
    expr = re.sub(rf'\{{namespace="{NAMESPACE}"\}}', "", expr)
    return " ".join(expr.split())


def test_prometheus_rule_matches_the_compose_alerts(promtool: str, tmp_path: Path) -> None:
    values = with_overrides(DEFAULTS, **{"prometheusRule.enabled": True})
    (rule,) = of_kind(render(values), "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    rendered = tmp_path / "chart-rules.yml"
    rendered.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(rendered)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr

    chart_alerts = _alerts(rule["spec"]["groups"])
    compose_alerts = _alerts(yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"])
    assert set(chart_alerts) == set(compose_alerts)
    for name, alert in chart_alerts.items():
        other = compose_alerts[name]
        assert _normalise(alert["expr"]) == _normalise(other["expr"]), name
        assert alert.get("for") == other.get("for"), name
        assert alert["labels"] == other["labels"], name


def test_alerts_that_matter_are_there() -> None:
    values = with_overrides(ALL_FEATURES)
    (rule,) = of_kind(render(values), "PrometheusRule")
    alerts = _alerts(rule["spec"]["groups"])
    stuck = alerts["HikerTimersStuck"]["expr"]
    assert "hiker_timers_pending" in stuck
    assert "increase(hiker_timers_fired_total" in stuck
    # Twice the idle timeout, with a floor so increase() has enough samples to see a fire.
    idle = int(ALL_FEATURES["conversation"]["config"]["HIKER_IDLE_TIMEOUT_SECONDS"])
    assert f"[{max(300, 2 * idle)}s]" in stuck
    assert "increase(hiker_messages_parked_total" in alerts["HikerMessagesParked"]["expr"]
    assert "[15m]" in alerts["HikerMessagesParked"]["expr"]
    assert "hiker_graph_requests_total" in alerts["HikerGraphErrorRateHigh"]["expr"]
    assert "hiker_api_recording_lag_seconds_bucket" in alerts["HikerApiRecordingBehind"]["expr"]
    assert "api" in alerts["HikerServiceDown"]["expr"]
    assert 'outcome="unavailable"' in alerts["HikerIngressUnavailable"]["expr"]
    rejected = alerts["HikerRulesReloadRejected"]["expr"]
    assert (
        'increase(hiker_rules_reloads_total{namespace="hiker-test", outcome="rejected"}[10m])'
        in (rejected)
    )
    failing = alerts["HikerAIFailing"]["expr"]
    assert 'increase(hiker_ai_requests_total{namespace="hiker-test", outcome!="ok"}[10m])' in (
        failing
    )
    assert failing.endswith("> 0.25")
    for alert in alerts.values():
        assert alert["labels"]["severity"] in {"warning", "critical"}
        assert alert["annotations"]["summary"]
