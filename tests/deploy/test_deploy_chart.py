"""charts/hiker through the real Helm SDK: lint, render with the CI values (defaults and every
feature on), Kubernetes schema validation of every object, hardening of every workload, and
which secrets each service gets."""

from __future__ import annotations

import helm_python as helm
import pytest
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
    CHART,
    CI_VALUES,
    COMPONENTS,
    KUBE_VERSION,
    NAMESPACE,
    RELEASE,
    assert_hardened_workload,
    of_kind,
    render,
    validate_k8s,
    values_file,
)

pytestmark = pytest.mark.deploy


def test_ci_values_cover_defaults_and_all_features() -> None:
    assert {"default-values.yaml", "all-features-values.yaml"} <= set(CI_VALUES)


@pytest.mark.parametrize("values_name", CI_VALUES)
def test_chart_lints_clean(values_name: str) -> None:
    report = helm.lint(
        CHART,
        values_file(values_name),
        strict=True,
        namespace=NAMESPACE,
        kube_version=f"v{KUBE_VERSION}",
    )
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems, report
    assert not report["errors"], report


@pytest.mark.parametrize("values_name", CI_VALUES)
def test_every_rendered_object_is_valid_kubernetes(values_name: str) -> None:
    objects = render(values_file(values_name))
    assert objects
    for obj in objects:
        validate_k8s(obj)
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
    names = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(names) == len(set(names)), "two objects of one kind share a name"


@pytest.mark.parametrize("values_name", CI_VALUES)
def test_every_service_is_a_hardened_deployment_with_a_metrics_service(values_name: str) -> None:
    objects = render(values_file(values_name))
    deployments = {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: d
        for d in of_kind(objects, "Deployment")
    }
    enabled = values_file(values_name).get("api", {}).get("enabled", False)
    assert set(deployments) == {*COMPONENTS, *(["api"] if enabled else [])}
    services = {s["metadata"]["name"]: s for s in of_kind(objects, "Service")}
    configmaps = {c["metadata"]["name"]: c for c in of_kind(objects, "ConfigMap")}
    for component, deployment in deployments.items():
        assert_hardened_workload(deployment)
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        # The metrics Service targets the same port the probes use and the config announces.
        metrics = services[f"{RELEASE}-{component}"]
        assert metrics["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
        assert [p["targetPort"] for p in metrics["spec"]["ports"]] == ["metrics"]
        config = configmaps[container["envFrom"][0]["configMapRef"]["name"]]["data"]
        port = next(p["containerPort"] for p in container["ports"] if p["name"] == "metrics")
        assert config["HIKER_METRICS_PORT"] == str(port)
        assert not any(
            k in config for k in ("HIKER_APP_SECRET", "HIKER_ACCESS_TOKEN", "HIKER_AMQP_URL")
        )
    webhook = services[f"{RELEASE}-ingress-webhook"]
    assert webhook["spec"]["ports"][0]["targetPort"] == "webhook"
    assert configmaps[f"{RELEASE}-ingress"]["data"]["HIKER_HTTP_PORT"] == "8080"
    if enabled:
        http = services[f"{RELEASE}-api-http"]
        assert [p["targetPort"] for p in http["spec"]["ports"]] == ["http"]
        assert configmaps[f"{RELEASE}-api"]["data"]["HIKER_API_PORT"] == "8081"
    else:
        assert f"{RELEASE}-api-http" not in services


def test_each_service_gets_only_its_own_secrets() -> None:
    objects = render(DEFAULTS)
    received = {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: {
            e["name"] for e in d["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        for d in of_kind(objects, "Deployment")
    }
    common = {"HIKER_AMQP_URL", "HIKER_REDIS_URL"}
    assert received["ingress"] == common | {
        "HIKER_APP_SECRET",
        "HIKER_APP_SECRETS",
        "HIKER_VERIFY_TOKEN",
    }
    graph_tokens = {"HIKER_ACCESS_TOKEN", "HIKER_ACCESS_TOKENS"}
    # Conversation downloads a bot's media through Graph with the number's token, and calls
    # the AI responder's model with its key.
    assert received["conversation"] == common | graph_tokens | {"HIKER_AI_API_KEY"}
    assert received["sender"] == common | graph_tokens
    (secret,) = of_kind(objects, "Secret")
    # The lists are optional (only HIKER_ACCESS_TOKEN and HIKER_APP_SECRET are set here), and
    # so is the AI key (the responder is off).
    assert set(secret["stringData"]) == set().union(*received.values()) - {
        "HIKER_ACCESS_TOKENS",
        "HIKER_APP_SECRETS",
        "HIKER_AI_API_KEY",
    }
    optional = {
        e["name"]
        for d in of_kind(objects, "Deployment")
        for e in d["spec"]["template"]["spec"]["containers"][0]["env"]
        if e["valueFrom"]["secretKeyRef"].get("optional")
    }
    assert optional == {
        "HIKER_ACCESS_TOKEN",
        "HIKER_ACCESS_TOKENS",
        "HIKER_APP_SECRET",
        "HIKER_APP_SECRETS",
        "HIKER_AI_API_KEY",
    }


def test_tokens_per_phone_number_alone_render_and_none_at_all_refuses() -> None:
    per_number = with_overrides(
        DEFAULTS, **{"secret.accessToken": "", "secret.accessTokens": "1001=EAA1,1002=EAA2"}
    )
    (secret,) = of_kind(render(per_number), "Secret")
    assert secret["stringData"]["HIKER_ACCESS_TOKENS"] == "1001=EAA1,1002=EAA2"
    assert "HIKER_ACCESS_TOKEN" not in secret["stringData"]
    with pytest.raises(helm.HelmError, match=r"secret\.accessToken \(or secret\.accessTokens"):
        render(with_overrides(DEFAULTS, **{"secret.accessToken": ""}))


def test_the_api_gets_its_token_and_database_and_refuses_without_them() -> None:
    enabled = with_overrides(
        DEFAULTS,
        **{
            "api.enabled": True,
            "secret.apiToken": "placeholder-api-token",
            "secret.databaseUrl": "postgresql://hiker:change-me@postgres.db.svc:5432/hiker",
        },
    )
    objects = render(enabled)
    (api,) = [
        d
        for d in of_kind(objects, "Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "api"
    ]
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["api"]
    env = {e["name"]: e for e in container["env"]}
    assert set(env) == {
        "HIKER_AMQP_URL", "HIKER_REDIS_URL", "HIKER_API_TOKEN", "HIKER_API_TOKENS",
        "HIKER_DATABASE_URL",
    }  # fmt: skip
    # Either token variable may be absent from the Secret: the api names what is missing.
    assert env["HIKER_API_TOKENS"]["valueFrom"]["secretKeyRef"]["optional"] is True
    assert env["HIKER_API_TOKEN"]["valueFrom"]["secretKeyRef"]["optional"] is True
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "metrics": 9105, "http": 8081
    }  # fmt: skip
    (secret,) = of_kind(objects, "Secret")
    assert secret["stringData"]["HIKER_API_TOKEN"] == "placeholder-api-token"
    assert "HIKER_API_TOKENS" not in secret["stringData"]
    scoped = with_overrides(
        enabled, **{"secret.apiToken": "", "secret.apiTokens": "reader-0123456789abcdef:read"}
    )
    (secret,) = of_kind(render(scoped), "Secret")
    assert secret["stringData"]["HIKER_API_TOKENS"] == "reader-0123456789abcdef:read"
    assert "HIKER_API_TOKEN" not in secret["stringData"]
    with pytest.raises(helm.HelmError, match=r"secret\.apiToken \(or secret\.apiTokens"):
        render(with_overrides(enabled, **{"secret.apiToken": ""}))
    with pytest.raises(helm.HelmError, match=r"secret\.databaseUrl is required"):
        render(with_overrides(enabled, **{"secret.databaseUrl": ""}))
    # Off by default: nothing of the api, and its secrets not asked for.
    assert "HIKER_API_TOKEN" not in of_kind(render(DEFAULTS), "Secret")[0]["stringData"]


def test_events_get_their_endpoints_secret_redis_and_egress_and_refuse_without_them() -> None:
    enabled = with_overrides(
        DEFAULTS,
        **{
            "events.enabled": True,
            "secret.eventsUrls": "https://crm.example.com/hooks/hiker",
            "secret.eventsSecret": "placeholder-events-secret-0123456789",
            "redis.passwordSecret.name": "redis",
        },
    )
    objects = render(enabled)
    (events,) = [
        d
        for d in of_kind(objects, "Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "events"
    ]
    container = events["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["events"]
    assert {e["name"] for e in container["env"]} == {
        "HIKER_AMQP_URL", "HIKER_REDIS_URL", "HIKER_REDIS_PASSWORD",
        "HIKER_EVENTS_URLS", "HIKER_EVENTS_SECRET",
    }  # fmt: skip
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"metrics": 9106}
    (secret,) = of_kind(objects, "Secret")
    assert secret["stringData"]["HIKER_EVENTS_URLS"] == "https://crm.example.com/hooks/hiker"
    egress = reachable_ports(policies_by_component(objects)["events"])
    assert egress == {53, 5672, 5671, 6379, 26379, 443}
    assert admitted(policies_by_component(objects)["events"]) == {
        "metrics": CHART_VALUES["networkPolicy"]["metricsFrom"]
    }
    for missing in ("secret.eventsUrls", "secret.eventsSecret"):
        with pytest.raises(helm.HelmError, match=rf"{missing} is required with events.enabled"):
            render(with_overrides(enabled, **{missing: ""}))
    # Off by default: nothing of it, and its secrets not asked for.
    default = render(DEFAULTS)
    assert "HIKER_EVENTS_SECRET" not in of_kind(default, "Secret")[0]["stringData"]
    assert all(d["spec"]["template"]["spec"]["containers"][0]["args"] != ["events"]
               for d in of_kind(default, "Deployment"))  # fmt: skip
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmValuesError):
        chart.validate_schema({"events": {"config": {"HIKER_EVENTS_SECRET": "x" * 40}}})


def test_defaults_without_secrets_refuse_to_render() -> None:
    with pytest.raises(helm.HelmError, match=r"secret\.amqpUrl is required"):
        render(None)


def test_an_existing_secret_replaces_the_chart_secret() -> None:
    objects = render(with_overrides(DEFAULTS, **{"secret.existingSecret": "mine"}))
    assert not of_kind(objects, "Secret")
    for deployment in of_kind(objects, "Deployment"):
        env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        assert {e["valueFrom"]["secretKeyRef"]["name"] for e in env} == {"mine"}


def test_default_install_has_pdbs_network_policies_and_no_optional_objects() -> None:
    objects = render(DEFAULTS)
    assert len(of_kind(objects, "PodDisruptionBudget")) == len(COMPONENTS)
    assert len(of_kind(objects, "NetworkPolicy")) == len(COMPONENTS)
    optional = {
        "Ingress",
        "HorizontalPodAutoscaler",
        "ScaledObject",
        "TriggerAuthentication",
        "ServiceMonitor",
        "PrometheusRule",
    }
    assert not optional & {o["kind"] for o in objects}
    # Dashboards are opt-in: only the per-service config maps and conversation's rules file.
    names = {c["metadata"]["name"] for c in of_kind(objects, "ConfigMap")}
    assert names == {f"{RELEASE}-{c}" for c in COMPONENTS} | {f"{RELEASE}-conversation-rules"}


def test_all_features_render_every_optional_kind() -> None:
    kinds = {o["kind"] for o in render(ALL_FEATURES)}
    assert {
        "Ingress",
        "HorizontalPodAutoscaler",
        "ScaledObject",
        "TriggerAuthentication",
        "NetworkPolicy",
        "ServiceMonitor",
        "PrometheusRule",
    } <= kinds


def test_keda_scales_consumers_on_their_queues() -> None:
    objects = render(ALL_FEATURES)
    scaled = {s["spec"]["scaleTargetRef"]["name"]: s for s in of_kind(objects, "ScaledObject")}
    queues = {"conversation": "hiker.conversation.inbound", "sender": "hiker.sender.outbox"}
    assert set(scaled) == {f"{RELEASE}-{c}" for c in queues}
    (auth,) = of_kind(objects, "TriggerAuthentication")
    assert auth["spec"]["secretTargetRef"] == [
        {
            "parameter": "host",
            "name": ALL_FEATURES["secret"]["existingSecret"],
            "key": "HIKER_AMQP_URL",
        }
    ]
    deployments = {d["metadata"]["name"]: d for d in of_kind(objects, "Deployment")}
    for component, queue in queues.items():
        (trigger,) = scaled[f"{RELEASE}-{component}"]["spec"]["triggers"]
        assert trigger["type"] == "rabbitmq"
        assert trigger["metadata"]["queueName"] == queue
        assert trigger["metadata"]["mode"] == "QueueLength"
        assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
        # KEDA owns the replica count; a fixed one would be reset on every upgrade.
        assert "replicas" not in deployments[f"{RELEASE}-{component}"]["spec"]
