"""What the deployment checks share: paths, the services' metric contract, chart rendering,
Kubernetes schema validation and the hardening every Deployment must show."""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "hiker"
DASHBOARDS = CHART / "dashboards"
COMPOSE = REPO / "deploy" / "compose"
PLAIN = REPO / "deploy" / "k8s"
PROMETHEUS = REPO / "deploy" / "prometheus"

# The services every install runs; the api is optional in the chart (``api.enabled``).
COMPONENTS = ("ingress", "conversation", "sender")
OPTIONAL_COMPONENTS = ("api",)
METRICS_PORTS = {
    "ingress": 9101,
    "conversation": 9102,
    "sender": 9103,
    "graph-mock": 9104,
    "api": 9105,
    "aimock": 9107,
}
# A current Kubernetes release whose schemas kubernetes-validate ships.
KUBE_VERSION = "1.33.0"
RELEASE = "hiker"
NAMESPACE = "hiker-test"

# The metrics the services export (the services' contract); histograms by their base name.
COUNTERS = frozenset(
    {
        "hiker_webhooks_received_total",
        "hiker_events_published_total",
        "hiker_inbound_messages_total",
        "hiker_duplicates_dropped_total",
        "hiker_statuses_received_total",
        "hiker_webhook_errors_total",
        "hiker_replies_emitted_total",
        "hiker_timers_scheduled_total",
        "hiker_timers_superseded_total",
        "hiker_timers_fired_total",
        "hiker_followups_emitted_total",
        "hiker_sends_skipped_total",
        "hiker_rules_reloads_total",
        "hiker_graph_requests_total",
        "hiker_messages_sent_total",
        "hiker_send_retries_total",
        "hiker_messages_parked_total",
        "hiker_sends_deduplicated_total",
        "hiker_api_records_written_total",
        "hiker_api_records_duplicate_total",
        "hiker_api_requests_total",
        "hiker_events_stamped_total",
        "hiker_events_skipped_total",
        "hiker_events_delivered_total",
        "hiker_events_retried_total",
        "hiker_events_parked_total",
        "hiker_events_answers_total",
        "hiker_handoffs_total",
        "hiker_ai_requests_total",
        "hiker_ai_tokens_total",
        "hiker_ai_debounced_messages_total",
        "hiker_ai_over_budget_total",
        "hiker_messages_failed_total",
        "hiker_messages_billed_total",
    }
)
HISTOGRAMS = frozenset(
    {
        "hiker_publish_latency_seconds",
        "hiker_timer_lateness_seconds",
        "hiker_graph_latency_seconds",
        "hiker_end_to_end_latency_seconds",
        "hiker_api_recording_lag_seconds",
        "hiker_api_request_latency_seconds",
        "hiker_events_post_seconds",
        "hiker_ai_latency_seconds",
    }
)
GAUGES = frozenset(
    {"hiker_timers_pending", "hiker_conversations_human_owned", "hiker_template_status"}
)
HIKER_METRICS = COUNTERS | HISTOGRAMS | GAUGES

# Where conversation finds its rules file, in compose and in the chart alike.
RULES_PATH = "/etc/hiker/rules.yaml"


def parse_rules_file(text: str, source: str) -> Any:
    """The rules as conversation reads them, through hiker's own parser: a RuleBook, or
    RulesFileError naming the line and the problem."""
    from hiker.conversation.rulesfile import default_rulebook, parse_rules

    return parse_rules(text, source, default_rulebook("are you there", 600))


# Custom resources: kubernetes-validate has no schema for them, so only their identity is checked.
CRD_API_VERSIONS = {
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "PrometheusRule": "monitoring.coreos.com/v1",
    "ScaledObject": "keda.sh/v1alpha1",
    "TriggerAuthentication": "keda.sh/v1alpha1",
}


def values_file(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CHART / "ci" / name).read_text()) or {}
    return loaded


CI_VALUES = sorted(p.name for p in (CHART / "ci").glob("*-values.yaml"))


@functools.cache
def _render_cached(values_yaml: str) -> tuple[dict[str, Any], ...]:
    import helm_python as helm

    values = yaml.safe_load(values_yaml)
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects: list[dict[str, Any]] = []
    for path in sorted(rendered):
        if not path.endswith("NOTES.txt"):
            objects.extend(doc for doc in yaml.safe_load_all(rendered[path]) if doc)
    return tuple(objects)


def render(values: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The chart's objects for these values (cached: rendering goes through Go once per set)."""
    return list(_render_cached(yaml.safe_dump(values)))


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def validate_k8s(obj: dict[str, Any]) -> None:
    """Validate against the Kubernetes OpenAPI schema (strict: unknown fields are errors)."""
    import kubernetes_validate

    kind = obj["kind"]
    if kind in CRD_API_VERSIONS:
        assert obj["apiVersion"] == CRD_API_VERSIONS[kind], obj["metadata"]["name"]
        assert obj["metadata"]["name"]
        assert isinstance(obj.get("spec"), dict)
        return
    kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def assert_hardened_workload(deployment: dict[str, Any]) -> None:
    """What every Hiker Deployment must carry, in the chart and in the plain manifests alike."""
    name = deployment["metadata"]["name"]
    pod = deployment["spec"]["template"]["spec"]
    pod_sc = pod["securityContext"]
    assert pod_sc["runAsNonRoot"] is True, name
    assert pod_sc["seccompProfile"]["type"] == "RuntimeDefault", name
    assert pod.get("automountServiceAccountToken") is False, name
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True, name
    assert isinstance(sc["runAsUser"], int), name
    assert sc["runAsUser"] > 0, name
    assert sc["readOnlyRootFilesystem"] is True, name
    assert sc["allowPrivilegeEscalation"] is False, name
    assert sc["capabilities"]["drop"] == ["ALL"], name
    assert not sc["capabilities"].get("add"), name
    assert sc["seccompProfile"]["type"] == "RuntimeDefault", name

    component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
    assert container["args"] == [component], name
    image = container["image"]
    assert ":" in image.rsplit("/", 1)[-1], image
    assert not image.endswith(":latest"), image

    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == METRICS_PORTS[component], name
    probes = {kind: container[kind]["httpGet"] for kind in ("livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == "/healthz", name
    assert probes["readinessProbe"]["path"] == "/readyz", name
    for probe in probes.values():
        assert probe["port"] in ("metrics", ports["metrics"]), name

    resources = container["resources"]
    assert resources["requests"]["cpu"], name
    assert resources["requests"]["memory"], name
    assert resources["limits"]["memory"], name

    # A read-only root needs a writable scratch dir for the libraries that want one.
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    assert "emptyDir" in volumes[mounts["/tmp"]], name

    # Secrets only by reference, never as literal env values.
    for env in container.get("env", []):
        if any(word in env["name"] for word in ("TOKEN", "SECRET", "PASSWORD", "URL")):
            assert "secretKeyRef" in env.get("valueFrom", {}), env["name"]


def compose_cli() -> list[str]:
    """How to run Docker Compose v2 here (`docker compose`, or a standalone `docker-compose`);
    missing, it skips locally and fails under CI, like require_tool. It needs no engine for
    `config`."""
    import subprocess

    if shutil.which("docker"):
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, timeout=30, check=False
        )
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    message = "Docker Compose v2 not found (deploy/compose/standins/install-compose)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def require_tool(name: str) -> str:
    """A tool's path. Locally a missing tool skips the test; in CI (CI set) it fails it, because
    there a skip would hide a check that never ran."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found (Debian: apt-get install prometheus)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
