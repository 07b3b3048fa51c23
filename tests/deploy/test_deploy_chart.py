"""charts/hiker through the real Helm SDK: lint, render with the CI values (defaults and every
feature on), Kubernetes schema validation of every object, hardening of every workload, the
values schema, conversation's rules file (parsed with hiker's own parser), and the alert rules
kept in step with the compose stack's."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from deploy_support import (
    CHART,
    CI_VALUES,
    COMPONENTS,
    COMPOSE,
    DASHBOARDS,
    KUBE_VERSION,
    NAMESPACE,
    OPTIONAL_COMPONENTS,
    PROMETHEUS,
    RELEASE,
    RULES_PATH,
    assert_hardened_workload,
    of_kind,
    parse_rules_file,
    render,
    validate_k8s,
    values_file,
)

from hiker.core.secret_policy import SECRET_KINDS
from hiker.core.settings import ConversationSettings, SenderSettings, load_settings

pytestmark = pytest.mark.deploy

DEFAULTS = values_file("default-values.yaml")
ALL_FEATURES = values_file("all-features-values.yaml")
CHART_VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


def with_overrides(base: dict[str, Any], **paths: Any) -> dict[str, Any]:
    """A deep copy of base with dotted paths set (``**{"prometheusRule.enabled": True}``)."""
    values = copy.deepcopy(base)
    for dotted, value in paths.items():
        node = values
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return values


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
    # Conversation downloads a bot's media through Graph with the number's token.
    assert received["conversation"] == common | graph_tokens
    assert received["sender"] == common | graph_tokens
    (secret,) = of_kind(objects, "Secret")
    # The lists are optional (only HIKER_ACCESS_TOKEN and HIKER_APP_SECRET are set here).
    assert set(secret["stringData"]) == set().union(*received.values()) - {
        "HIKER_ACCESS_TOKENS",
        "HIKER_APP_SECRETS",
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


SENTINEL = values_file("sentinel-values.yaml")
CLUSTER = values_file("cluster-values.yaml")


def _service_env(
    objects: list[dict[str, Any]],
) -> dict[str, tuple[dict[str, str], dict[str, dict[str, Any]]]]:
    """Per service: its ConfigMap's variables, and its variables taken from Secrets."""
    configmaps = {c["metadata"]["name"]: c.get("data", {}) for c in of_kind(objects, "ConfigMap")}
    found = {}
    for deployment in of_kind(objects, "Deployment"):
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        config = configmaps[container["envFrom"][0]["configMapRef"]["name"]]
        secrets = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
        found[deployment["metadata"]["labels"]["app.kubernetes.io/component"]] = (config, secrets)
    return found


def test_every_listener_is_on_the_pod_network_unless_config_says_otherwise() -> None:
    values = with_overrides(
        DEFAULTS,
        **{
            "api.enabled": True,
            "secret.apiToken": "placeholder-api-token",
            "secret.databaseUrl": "postgresql://hiker:pw@db/hiker",
            "api.config": {"HIKER_API_HOST": "::"},
        },
    )
    env = {component: config for component, (config, _) in _service_env(render(values)).items()}
    hosts = {component: config["HIKER_METRICS_HOST"] for component, config in env.items()}
    assert hosts == dict.fromkeys((*COMPONENTS, *OPTIONAL_COMPONENTS), "0.0.0.0")
    assert env["ingress"]["HIKER_HTTP_HOST"] == "0.0.0.0"
    assert env["api"]["HIKER_API_HOST"] == "::"  # e.g. an IPv6-only cluster


def _settings_of(
    objects: list[dict[str, Any]],
    config: dict[str, str],
    secrets: dict[str, dict[str, Any]],
    cls: Any,
) -> Any:
    """What the service would make of this environment (placeholder secret values). An
    optional key the chart's own Secret lacks is left unset, as Kubernetes does; an existing
    Secret is taken to hold every key."""
    # Hiker's own secrets as long as real ones: the services refuse placeholders.
    token = "rendered-secret-" + "0123456789abcdef" * 4
    placeholders = {
        "HIKER_AMQP_URL": "amqp://u:p@h1:5672,h2:5672,h3:5672/hiker",
        "HIKER_REDIS_URL": "redis://:p@redis:6379/0",
        "HIKER_ACCESS_TOKENS": f"100000000000001={token}",
    }
    held = {
        (secret["metadata"]["name"], key)
        for secret in of_kind(objects, "Secret")
        for key in secret.get("stringData", {})
    }
    environ = dict(config)
    for name, ref in secrets.items():
        rendered = any(name_ == ref["name"] for name_, _ in held)
        if ref.get("optional") and rendered and (ref["name"], ref["key"]) not in held:
            continue
        default = token if name in SECRET_KINDS else "placeholder-secret"
        environ[name] = placeholders.get(name, default)
    return load_settings(cls, environ)


def test_sentinel_values_give_the_redis_users_the_sentinels_and_both_passwords() -> None:
    objects = render(SENTINEL)
    env = _service_env(objects)
    for component in ("conversation", "sender"):
        config, secrets = env[component]
        assert config["HIKER_REDIS_SENTINELS"] == ",".join(SENTINEL["redis"]["sentinel"]["hosts"])
        assert config["HIKER_REDIS_SENTINEL_MASTER"] == "mymaster"
        assert config["HIKER_AMQP_QUORUM_GROUP_SIZE"] == "3"
        assert secrets["HIKER_REDIS_PASSWORD"] == {"name": "redis", "key": "redis-password"}
        assert secrets["HIKER_REDIS_SENTINEL_PASSWORD"] == {
            "name": "redis",
            "key": "redis-password",
        }
        # The URL's host is not used under Sentinel: the chart's Secret may leave it out.
        assert secrets["HIKER_REDIS_URL"]["optional"] is True
    settings_class = {"conversation": ConversationSettings, "sender": SenderSettings}
    for component, cls in settings_class.items():
        target = _settings_of(objects, *env[component], cls).redis_target()
        assert [str(node) for node in target.sentinels] == SENTINEL["redis"]["sentinel"]["hosts"]
        assert target.sentinel_password == target.password == "placeholder-secret"
    ingress_config, ingress_secrets = env["ingress"]
    assert "HIKER_REDIS_SENTINELS" not in ingress_config  # ingress never talks to Redis
    assert not {"HIKER_REDIS_PASSWORD", "HIKER_REDIS_SENTINEL_PASSWORD"} & set(ingress_secrets)
    assert ingress_config["HIKER_AMQP_QUORUM_GROUP_SIZE"] == "3"  # ingress declares queues too
    (secret,) = of_kind(objects, "Secret")
    assert "HIKER_REDIS_URL" not in secret["stringData"]


def test_cluster_values_point_the_redis_users_at_a_cluster() -> None:
    objects = render(CLUSTER)
    env = _service_env(objects)
    for component, cls in (("conversation", ConversationSettings), ("sender", SenderSettings)):
        config, secrets = env[component]
        assert config["HIKER_REDIS_CLUSTER"] == "true"
        assert secrets["HIKER_REDIS_PASSWORD"]["name"] == "redis-cluster"
        settings = _settings_of(objects, config, secrets, cls)
        assert settings.redis_target().cluster
        assert not settings.adopts_legacy_keys
    assert "HIKER_REDIS_CLUSTER" not in env["ingress"][0]
    (auth,) = of_kind(objects, "TriggerAuthentication")
    # KEDA takes one host: a key of its own when HIKER_AMQP_URL lists the nodes.
    assert auth["spec"]["secretTargetRef"][0]["key"] == "HIKER_AMQP_URL_KEDA"


def test_default_values_render_no_redis_or_broker_extras() -> None:
    for config, secrets in _service_env(render(DEFAULTS)).values():
        assert not {k for k in config if k.startswith(("HIKER_REDIS_S", "HIKER_REDIS_CLUSTER"))}
        assert "HIKER_AMQP_QUORUM_GROUP_SIZE" not in config
        assert "optional" not in secrets["HIKER_REDIS_URL"]


def test_sentinel_mode_without_sentinels_is_refused() -> None:
    values = with_overrides(SENTINEL, **{"redis.sentinel.hosts": []})
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmValuesError):
        chart.validate_schema(values)
    with pytest.raises(helm.HelmError):
        render(values)


def test_values_schema_checks_the_redis_and_broker_values() -> None:
    with helm.Chart.load(CHART) as chart:
        for values in (SENTINEL, CLUSTER):
            chart.validate_schema(values)
        wrong: list[dict[str, Any]] = [
            {"redis": {"mode": "replicated"}},
            {"redis": {"sentinel": {"hosts": ["not a host:26379"]}}},
            {"redis": {"passwordSecret": {"name": "r", "secret": "k"}}},
            {"amqp": {"quorumInitialGroupSize": 0}},
            {"amqp": {"groupSize": 3}},
            {"config": {"HIKER_REDIS_PASSWORD": "hunter2"}},
            {"sender": {"config": {"HIKER_REDIS_SENTINEL_PASSWORD": "hunter2"}}},
        ]
        for value in wrong:
            with pytest.raises(helm.HelmValuesError):
                chart.validate_schema(with_overrides(DEFAULTS) | value)


def test_hpa_and_keda_on_one_service_is_refused() -> None:
    values = with_overrides(ALL_FEATURES, **{"sender.autoscaling.enabled": True})
    with pytest.raises(helm.HelmError, match="keda"):
        render(values)


def test_webhook_ingress_has_tls_and_routes_only_the_webhook() -> None:
    objects = render(ALL_FEATURES)
    (ingress,) = of_kind(objects, "Ingress")
    assert ingress["spec"]["tls"][0]["secretName"]
    paths = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert [p["path"] for p in paths] == ["/webhook"]
    assert {p["backend"]["service"]["name"] for p in paths} == {f"{RELEASE}-ingress-webhook"}


def policies_by_component(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = {}
    for policy in of_kind(objects, "NetworkPolicy"):
        component = policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        found[component] = policy["spec"]
    return found


def admitted(spec: dict[str, Any]) -> dict[str, list[dict[str, Any]] | None]:
    """Each admitted port and the peers it is admitted from (None: from anywhere)."""
    return {p["port"]: rule.get("from") for rule in spec["ingress"] for p in rule["ports"]}


def reachable_ports(spec: dict[str, Any]) -> set[int]:
    return {p["port"] for rule in spec["egress"] for p in rule["ports"]}


# What each service connects to: DNS, the broker, and its own dependencies.
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


def test_service_monitors_carry_the_release_label_and_scrape_the_metrics_port() -> None:
    objects = render(ALL_FEATURES)
    monitors = of_kind(objects, "ServiceMonitor")
    assert len(monitors) == len(COMPONENTS) + len(OPTIONAL_COMPONENTS)
    services = of_kind(objects, "Service")
    for monitor in monitors:
        assert monitor["metadata"]["labels"]["release"] == ALL_FEATURES["serviceMonitor"]["release"]
        assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
        selector = monitor["spec"]["selector"]["matchLabels"]
        selected = [s for s in services if selector.items() <= s["metadata"]["labels"].items()]
        assert any(p["name"] == "metrics" for s in selected for p in s["spec"]["ports"])


def test_dashboard_configmaps_are_the_dashboard_files_for_the_grafana_sidecar() -> None:
    objects = render(ALL_FEATURES)
    dashboards = [
        c for c in of_kind(objects, "ConfigMap") if "grafana_dashboard" in c["metadata"]["labels"]
    ]
    files = {p.name: p.read_text() for p in DASHBOARDS.glob("*.json")}
    assert len(dashboards) == len(files) == 2
    shipped = {}
    for configmap in dashboards:
        assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
        shipped.update(configmap["data"])
    assert {k: json.loads(v) for k, v in shipped.items()} == {
        k: json.loads(v) for k, v in files.items()
    }


def _conversation(objects: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, str]]:
    """Conversation's pod spec and the environment its ConfigMap gives it."""
    (deployment,) = [
        d for d in of_kind(objects, "Deployment") if d["metadata"]["name"].endswith("-conversation")
    ]
    (config,) = [
        c
        for c in of_kind(objects, "ConfigMap")
        if c["metadata"]["name"] == f"{RELEASE}-conversation"
    ]
    return deployment["spec"]["template"], config["data"]


def test_the_rules_configmap_parses_with_hikers_parser_and_is_the_compose_default() -> None:
    objects = render(DEFAULTS)
    (rules,) = [
        c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"].endswith("-rules")
    ]
    assert set(rules["data"]) == {"rules.yaml"}
    text = rules["data"]["rules.yaml"]
    # What the pod reads parses (RulesFileError would name the line), and by default it is the
    # very file compose mounts.
    parse_rules_file(text, f"ConfigMap {rules['metadata']['name']}: rules.yaml")
    assert text == (COMPOSE / "rules.yaml").read_text()

    template, env = _conversation(objects)
    assert env["HIKER_RULES_FILE"] == RULES_PATH
    assert "HIKER_RESPONDER" not in env
    (container,) = template["spec"]["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "rules"]
    # A directory mount: a subPath mount would never see the kubelet swap in an update.
    assert mount == {"name": "rules", "mountPath": str(Path(RULES_PATH).parent), "readOnly": True}
    (volume,) = [v for v in template["spec"]["volumes"] if v["name"] == "rules"]
    assert volume["configMap"]["name"] == rules["metadata"]["name"]
    assert volume["configMap"]["items"] == [{"key": "rules.yaml", "path": Path(RULES_PATH).name}]
    # Conversation reloads the file itself: a rules change must not roll the pods.
    assert set(template["metadata"]["annotations"]) <= {"checksum/config", "checksum/secret"}
    # Only conversation reads rules.
    for deployment in of_kind(objects, "Deployment"):
        if not deployment["metadata"]["name"].endswith("-conversation"):
            pod = deployment["spec"]["template"]["spec"]
            assert "rules" not in {v["name"] for v in pod["volumes"]}


def test_rules_given_as_a_value_render_as_written() -> None:
    mine = (
        "rules:\n  - {name: ping, match: exact, pattern: ping, reply: pong}\ndefault_reply: eh?\n"
    )
    objects = render(with_overrides(DEFAULTS, **{"conversation.rules": mine}))
    (rules,) = [
        c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"].endswith("-rules")
    ]
    assert rules["data"]["rules.yaml"] == mine
    book = parse_rules_file(rules["data"]["rules.yaml"], "rules.yaml")
    assert [r.name for r in book.rules] == ["ping"]


def test_an_existing_rules_configmap_and_a_responder() -> None:
    objects = render(ALL_FEATURES)
    assert not [
        c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"].endswith("-rules")
    ]
    template, env = _conversation(objects)
    (volume,) = [v for v in template["spec"]["volumes"] if v["name"] == "rules"]
    assert volume["configMap"]["name"] == ALL_FEATURES["conversation"]["existingRulesConfigMap"]
    assert env["HIKER_RULES_FILE"] == RULES_PATH
    assert env["HIKER_RESPONDER"] == ALL_FEATURES["conversation"]["responder"]


def test_no_rules_means_the_built_in_rules() -> None:
    objects = render(with_overrides(DEFAULTS, **{"conversation.rules": ""}))
    assert not [
        c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"].endswith("-rules")
    ]
    template, env = _conversation(objects)
    assert "HIKER_RULES_FILE" not in env
    assert "rules" not in {v["name"] for v in template["spec"]["volumes"]}


def test_values_schema_rejects_unknown_keys() -> None:
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(DEFAULTS)
        chart.validate_schema(ALL_FEATURES)
        typos: list[dict[str, Any]] = [
            {"replicaCount": 3},
            {"ingress": {"replicas": 3}},
            {"sender": {"keda": {"enabled": True, "queueName": "q", "queueLenght": 5}}},
            {"serviceMonitor": {"enable": True}},
            {"secret": {"token": "x"}},
            {"conversation": {"rulesConfigMap": "mine"}},
            {"sender": {"rules": "rules: []"}},
        ]
        for typo in typos:
            with pytest.raises(helm.HelmValuesError, match="additional properties"):
                chart.validate_schema(with_overrides(DEFAULTS) | typo)
        # HIKER_RESPONDER is `package.module:factory`, as the service's settings demand.
        chart.validate_schema(with_overrides(DEFAULTS, **{"conversation.responder": "a.b:make"}))
        for responder in ("a.b", "a.b:make()", "a b:make"):
            with pytest.raises(helm.HelmValuesError):
                chart.validate_schema(
                    with_overrides(DEFAULTS, **{"conversation.responder": responder})
                )


def test_values_schema_keeps_secrets_out_of_config_maps() -> None:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmValuesError):
        chart.validate_schema({"conversation": {"config": {"HIKER_AMQP_URL": "amqp://u:p@h/"}}})


def test_every_value_is_commented() -> None:
    """Each key in values.yaml has a comment right above it, except the entries of maps that are
    passed through whole (env, resources, security contexts, labels), documented by their parent."""
    # `rules` is a block of YAML text (the rules file itself), commented inside.
    passthrough = {
        "config",
        "resources",
        "podSecurityContext",
        "securityContext",
        "labels",
        "rules",
    }
    lines = (CHART / "values.yaml").read_text().splitlines()
    stack: list[tuple[int, str]] = []
    undocumented = []
    for i, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z_][\w.-]*):", line)
        if not match:
            continue
        indent, key = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        inside_passthrough = any(k in passthrough for _, k in stack)
        stack.append((indent, key))
        previous = lines[i - 1].strip() if i else ""
        has_value = bool(line.split(":", 1)[1].split("#")[0].strip())
        # A block header is documented by its children; a leaf (or a pass-through map) by itself.
        needs_comment = has_value or key in passthrough
        if not inside_passthrough and needs_comment and not previous.startswith("#"):
            undocumented.append(f"line {i + 1}: {key}")
    assert not undocumented, undocumented


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
    for alert in alerts.values():
        assert alert["labels"]["severity"] in {"warning", "critical"}
        assert alert["annotations"]["summary"]
