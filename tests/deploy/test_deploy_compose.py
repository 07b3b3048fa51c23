"""deploy/compose and deploy/prometheus: the compose file is valid against the compose
specification, refers only to files that exist, starts in a health-gated order, takes its secrets
from .env, ships a rules file conversation can read, keeps the ngrok tunnel an opt-in profile,
and its Prometheus and Grafana configuration agree with the services."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from compose_files import COMPOSE_FILE, run_compose, services
from deploy_support import (
    COMPONENTS,
    COMPOSE,
    DASHBOARDS,
    METRICS_PORTS,
    OPTIONAL_COMPONENTS,
    PROMETHEUS,
    REPO,
    RULES_PATH,
    parse_rules_file,
)

pytestmark = pytest.mark.deploy

HIKER_SERVICES = (*COMPONENTS, *OPTIONAL_COMPONENTS, "graph-mock", "aimock")
# Optional extras, each only under its profile (`docker compose --profile tunnel up`).
PROFILE_SERVICES = {"tunnel": "tunnel", "tunnel-url": "tunnel", "events": "events"}


def test_compose_file_matches_the_compose_specification() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE_FILE),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _bind_sources(service: dict[str, Any]) -> list[str]:
    sources = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                sources.append(volume["source"])
        elif volume.split(":", 1)[0].startswith((".", "/")):
            sources.append(volume.split(":", 1)[0])
    return sources


def test_every_referenced_file_exists() -> None:
    checked = 0
    for name, service in services().items():
        for source in _bind_sources(service):
            assert (COMPOSE / source).exists(), f"{name}: bind mount {source} does not exist"
            checked += 1
        env_files = service.get("env_file", [])
        for env_file in [env_files] if isinstance(env_files, str) else env_files:
            path = env_file if isinstance(env_file, str) else env_file["path"]
            if Path(path).name != ".env":  # .env is each developer's own copy of .env.example
                assert (COMPOSE / path).is_file(), f"{name}: env_file {path} does not exist"
        build = service.get("build")
        if build:
            context = COMPOSE / (build if isinstance(build, str) else build.get("context", "."))
            assert context.is_dir(), f"{name}: build context {context}"
            dockerfile = (
                "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            )
            assert (context / dockerfile).is_file(), f"{name}: {dockerfile} not in {context}"
    assert checked >= 5


def test_the_stack_has_everything_the_design_names() -> None:
    core = {name for name, service in services().items() if "profiles" not in service}
    assert core == {*HIKER_SERVICES, "rabbitmq", "redis", "postgres", "prometheus", "grafana"}
    optional = {
        name: service["profiles"] for name, service in services().items() if name not in core
    }
    # Only optional extras use profiles, and a plain `docker compose up` starts none of them.
    assert optional == {name: [profile] for name, profile in PROFILE_SERVICES.items()}
    rabbit = services()["rabbitmq"]
    assert re.fullmatch(r"rabbitmq:4\.\d+-management", rabbit["image"]), rabbit["image"]
    redis = services()["redis"]
    assert re.fullmatch(r"redis:7(\.\d+)*", redis["image"]), redis["image"]
    assert "--appendonly" in redis["command"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") for v in redis["volumes"]), (
        "Redis data must outlive the container"
    )
    for name, service in services().items():
        assert "bitnami" not in service.get("image", ""), name


def test_hiker_services_run_the_one_image_with_their_command() -> None:
    images = set()
    for name in HIKER_SERVICES:
        service = services()[name]
        images.add(service["image"])
        assert service["command"] == [name]
        assert service["environment"]["HIKER_METRICS_PORT"] == str(METRICS_PORTS[name])
        # Hiker listens on loopback by default: in a container that reaches no one.
        assert service["environment"]["HIKER_METRICS_HOST"] == "0.0.0.0"
        assert service.get("read_only") is True
        assert "ALL" in service.get("cap_drop", [])
    assert len(images) == 1
    assert services()["ingress"]["environment"]["HIKER_HTTP_HOST"] == "0.0.0.0"
    assert services()["api"]["environment"]["HIKER_API_HOST"] == "0.0.0.0"


def test_start_order_is_health_gated() -> None:
    all_services = services()
    for name, service in all_services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: use the long form with conditions"
        for target, condition in depends.items():
            if (name, target) == ("tunnel-url", "tunnel"):
                # ngrok has no health check to offer; tunnel-url polls its API until a URL shows.
                assert condition["condition"] == "service_started"
                continue
            assert condition["condition"] == "service_healthy", f"{name} -> {target}"
            assert "healthcheck" in all_services[target], f"{target} has no healthcheck"
    for name in HIKER_SERVICES:
        assert {"rabbitmq", "redis"} <= set(all_services[name]["depends_on"]), name
        test = " ".join(all_services[name]["healthcheck"]["test"])
        assert "/readyz" in test, name
        assert "HIKER_METRICS_PORT" in test, name
    assert "graph-mock" in all_services["sender"]["depends_on"]
    assert "prometheus" in all_services["grafana"]["depends_on"]


def _variables(text: str) -> set[str]:
    return set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text))


def _example_env() -> dict[str, str]:
    pairs = {}
    for line in (COMPOSE / ".env.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key] = value
    return pairs


def test_secrets_come_from_env_and_the_example_sets_every_required_one() -> None:
    text = COMPOSE_FILE.read_text()
    required = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*):\?", text))
    example = _example_env()
    assert required <= set(example), f"{required - set(example)} missing from .env.example"
    documented = example.keys() | set(
        re.findall(r"^#\s*([A-Z_][A-Z0-9_]*)=", (COMPOSE / ".env.example").read_text(), re.M)
    )
    assert _variables(text) <= documented, _variables(text) - documented
    for name, service in services().items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"TOKEN|SECRET|PASSWORD|PASS$", key):
                assert str(value).startswith("${"), f"{name}: {key} must come from .env"
    # A short idle timeout for local development is one variable away.
    assert "HIKER_IDLE_TIMEOUT_SECONDS" in example
    assert services()["conversation"]["environment"]["HIKER_IDLE_TIMEOUT_SECONDS"].startswith(
        "${HIKER_IDLE_TIMEOUT_SECONDS"
    )


def test_rabbitmq_exposes_per_queue_metrics() -> None:
    plugins = (COMPOSE / "rabbitmq" / "enabled_plugins").read_text()
    assert re.fullmatch(r"\s*\[[a-z_, ]+\]\.\s*", plugins), "an Erlang list term ending in '.'"
    assert "rabbitmq_prometheus" in plugins
    assert "rabbitmq_management" in plugins
    conf = (COMPOSE / "rabbitmq" / "hiker.conf").read_text()
    assert re.search(r"^prometheus\.return_per_object_metrics\s*=\s*true\s*$", conf, re.M)
    mounts = services()["rabbitmq"]["volumes"]
    assert any(m.endswith(":/etc/rabbitmq/enabled_plugins:ro") for m in mounts)
    assert any(re.search(r":/etc/rabbitmq/conf\.d/[\w.-]+\.conf:ro$", m) for m in mounts)


def _prometheus_config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    return loaded


def test_prometheus_scrapes_every_service_and_rabbitmq() -> None:
    targets = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in _prometheus_config()["scrape_configs"]
    }
    for name in HIKER_SERVICES:
        # Job names are what the dashboards' job variable and the alerts select on.
        assert targets[f"hiker-{name}"] == [f"{name}:{METRICS_PORTS[name]}"]
    assert targets["rabbitmq"] == ["rabbitmq:15692"]
    mounts = services()["prometheus"]["volumes"]
    assert any(
        Path(COMPOSE / m.split(":")[0]).resolve() == PROMETHEUS for m in mounts if m.startswith(".")
    )


def test_prometheus_config_and_rules_pass_promtool(promtool: str) -> None:
    for args in (
        ["check", "config", str(PROMETHEUS / "prometheus.yml")],
        ["check", "rules", str(PROMETHEUS / "alerts.yml")],
    ):
        result = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_provisions_the_datasource_and_the_chart_dashboards() -> None:
    grafana = services()["grafana"]
    provisioning = COMPOSE / "grafana" / "provisioning"
    (datasource,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())[
        "datasources"
    ]
    assert datasource["uid"] == "prometheus"
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "hiker.yaml").read_text())[
        "providers"
    ]
    mounts = {
        (COMPOSE / m.split(":")[0]).resolve(): m.split(":")[1]
        for m in grafana["volumes"]
        if m.startswith(".")
    }
    # One copy of the dashboards: the chart's folder, mounted where the provider looks.
    assert mounts[DASHBOARDS.resolve()] == provider["options"]["path"]
    assert mounts[provisioning.resolve()] == "/etc/grafana/provisioning"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (DASHBOARDS / Path(home).name).is_file()
    assert home.startswith(provider["options"]["path"])


def test_nothing_in_compose_points_outside_the_repository() -> None:
    for service in services().values():
        for source in _bind_sources(service):
            assert (COMPOSE / source).resolve().is_relative_to(REPO), source


def test_conversation_reads_the_shipped_rules_file() -> None:
    conversation = services()["conversation"]
    assert conversation["environment"]["HIKER_RULES_FILE"] == RULES_PATH
    # Read-only, and the file itself (not the folder, which holds .env).
    assert f"./rules.yaml:{RULES_PATH}:ro" in conversation["volumes"]


def _uncommented_examples(text: str) -> str:
    """The rules file with its commented-out YAML examples switched on."""
    return re.sub(r"^# (?=[a-z_]+:|  )", "", text, flags=re.M)


def test_the_shipped_rules_parse_and_extend_the_built_in_rules() -> None:
    from hiker.conversation.rules import DEFAULT_RULES

    text = (COMPOSE / "rules.yaml").read_text()
    book = parse_rules_file(text, "deploy/compose/rules.yaml")
    # The built-in replies first, then the rich examples; the environment keeps the follow-up.
    assert book.rules[: len(DEFAULT_RULES)] == DEFAULT_RULES
    names = [rule.name for rule in book.rules]
    assert {"menu", "sizes", "catalog", "photo", "docs", "pics"} <= set(names)
    assert book.default.followup_text == "are you there"
    assert book.default.idle_timeout_seconds == 600
    assert not book.numbers
    # The commented examples are valid too, so uncommenting one is safe.
    examples = _uncommented_examples(text)
    assert examples != text
    switched_on = parse_rules_file(examples, "deploy/compose/rules.yaml (examples)")
    (policy,) = switched_on.numbers.values()
    assert policy.followup_template is not None


def test_an_invalid_rules_file_is_reported_with_its_line() -> None:
    from hiker.conversation.rulesfile import RulesFileError

    broken = (COMPOSE / "rules.yaml").read_text().replace("match: prefix", "match: sometimes")
    line = broken.splitlines().index("    match: sometimes") + 1
    with pytest.raises(RulesFileError, match=rf"rules\.yaml:{line}:"):
        parse_rules_file(broken, "rules.yaml")


def test_the_tunnel_profile_exposes_ingress_through_ngrok() -> None:
    tunnel = services()["tunnel"]
    # The official image, pinned to a 3.x release (never latest).
    assert re.fullmatch(r"ngrok/ngrok:3\.\d+\.\d+(-(alpine|debian))?", tunnel["image"])
    command = tunnel["command"]
    assert isinstance(command, str)
    assert command.startswith("http ingress:8080 ")
    # --url only when a static domain is set; an unset NGROK_DOMAIN adds no argument.
    assert "${NGROK_DOMAIN:+--url=${NGROK_DOMAIN:-}}" in command
    assert tunnel["depends_on"]["ingress"]["condition"] == "service_healthy"
    assert tunnel["ports"] == ["127.0.0.1:4040:4040"]
    assert "ALL" in tunnel["cap_drop"]

    url = services()["tunnel-url"]
    assert url["image"] == services()["ingress"]["image"]
    assert url["command"] == ["tunnel-url", "--api", "http://tunnel:4040"]
    assert url["restart"] == "no"
    assert url.get("read_only") is True
    assert set(url["depends_on"]) == {"tunnel"}


def test_the_ngrok_authtoken_comes_from_env_and_is_never_required_or_written_down() -> None:
    token = services()["tunnel"]["environment"]["NGROK_AUTHTOKEN"]
    # From .env only; `:-` not `:?`, since compose interpolates every service, profile or not,
    # and a plain `docker compose up` must not need an ngrok account.
    assert token == "${NGROK_AUTHTOKEN:-}"
    text = COMPOSE_FILE.read_text()
    assert "NGROK_AUTHTOKEN:?" not in text
    assert "NGROK_AUTHTOKEN" not in _example_env(), ".env.example documents it, commented out"
    assert re.search(r"^# NGROK_AUTHTOKEN=$", (COMPOSE / ".env.example").read_text(), re.M)
    for name in ("tunnel", "tunnel-url"):
        for key, value in (services()[name].get("environment") or {}).items():
            assert str(value).startswith("${"), f"{name}: {key} must come from .env"


def test_the_events_profile_takes_its_endpoints_and_secret_from_env_never_required() -> None:
    events = services()["events"]
    assert events["command"] == ["events"]
    environment = events["environment"]
    assert environment["HIKER_EVENTS_URLS"] == "${HIKER_EVENTS_URLS:-}"
    assert environment["HIKER_EVENTS_SECRET"] == "${HIKER_EVENTS_SECRET:-}"
    assert environment["HIKER_METRICS_PORT"] == "9106"
    assert "HIKER_EVENTS_SECRET" not in _example_env(), ".env.example documents it, commented out"


def test_the_rules_reload_alert_fires_on_the_first_rejection(promtool: str, tmp_path: Path) -> None:
    """A pod's counter series is born at 1 on its first rejection, which increase() alone
    misses; the alert must fire then too, and stop once nothing new is rejected."""
    (rule,) = [
        r
        for g in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
        for r in g["rules"]
        if r.get("alert") == "HikerRulesReloadRejected"
    ]
    expected = [{"exp_labels": rule["labels"], "exp_annotations": rule["annotations"]}]
    series = 'hiker_rules_reloads_total{job="hiker-conversation", outcome="rejected"}'
    tests = {
        "rule_files": [str(PROMETHEUS / "alerts.yml")],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                # First rejection at 3m, a second one at 20m.
                "input_series": [{"series": series, "values": "_ _ _ 1x17 2x10"}],
                "alert_rule_test": [
                    {"eval_time": t, "alertname": "HikerRulesReloadRejected", "exp_alerts": e}
                    for t, e in (("5m", expected), ("16m", []), ("22m", expected))
                ],
            }
        ],
    }
    path = tmp_path / "rules-test.yml"
    path.write_text(yaml.safe_dump(tests))
    result = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "profile",
    [[], ["--profile", "tunnel"], ["--profile", "events"]],
    ids=["default", "tunnel", "events"],
)
def test_compose_with_the_example_env_prints_no_warning(profile: list[str]) -> None:
    result = run_compose(*profile, "config", "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr


def test_a_static_ngrok_domain_still_becomes_the_url_flag() -> None:
    result = run_compose("--profile", "tunnel", "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    unset = json.loads(result.stdout)["services"]["tunnel"]["command"]
    assert unset == ["http", "ingress:8080", "--log", "stdout"]
    result = run_compose(
        "--profile", "tunnel", "config", "--format", "json", NGROK_DOMAIN="me.ngrok.example"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["services"]["tunnel"]["command"][-1] == (
        "--url=me.ngrok.example"
    )
