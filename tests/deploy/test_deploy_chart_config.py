"""charts/hiker's configuration: listeners, Redis and broker modes, scaling, the webhook's
Ingress, ServiceMonitors, dashboards, conversation's rules, and the values schema (unknown keys,
secrets kept out of ConfigMaps, every value commented)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
from chart_values import ALL_FEATURES, DEFAULTS, with_overrides
from deploy_support import (
    CHART,
    COMPONENTS,
    COMPOSE,
    DASHBOARDS,
    OPTIONAL_COMPONENTS,
    RELEASE,
    RULES_PATH,
    of_kind,
    parse_rules_file,
    render,
    values_file,
)

from hiker.core.secret_policy import SECRET_KINDS
from hiker.core.settings import ConversationSettings, SenderSettings, load_settings

pytestmark = pytest.mark.deploy


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
