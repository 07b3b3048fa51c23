"""deploy/compose and deploy/prometheus: the compose file is valid against the compose
specification, refers only to files that exist, starts in a health-gated order, takes its secrets
from .env, and its Prometheus and Grafana configuration agree with the services."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import COMPONENTS, COMPOSE, DASHBOARDS, METRICS_PORTS, PROMETHEUS, REPO

pytestmark = pytest.mark.deploy

COMPOSE_FILE = COMPOSE / "compose.yaml"
HIKER_SERVICES = (*COMPONENTS, "graph-mock")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


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
    assert set(services()) == {*HIKER_SERVICES, "rabbitmq", "redis", "prometheus", "grafana"}
    assert not any("profiles" in s for s in services().values()), (
        "only optional extras use profiles"
    )
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
        assert service.get("read_only") is True
        assert "ALL" in service.get("cap_drop", [])
    assert len(images) == 1


def test_start_order_is_health_gated() -> None:
    all_services = services()
    for name, service in all_services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: use the long form with conditions"
        for target, condition in depends.items():
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
