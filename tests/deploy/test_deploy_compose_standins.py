"""The stand-in override the container path lays over the real compose file: it swaps images
and host ports, nothing else."""

from __future__ import annotations

import json

import pytest
import yaml
from compose_files import run_compose, services
from deploy_support import (
    COMPOSE,
)

pytestmark = pytest.mark.deploy


STANDINS = COMPOSE / "standins" / "compose.standins.yaml"


class _OverrideLoader(yaml.SafeLoader):
    """Reads compose's `!override` tag as the plain value it wraps."""


_OverrideLoader.add_constructor(
    "!override",
    lambda loader, node: loader.construct_sequence(node),  # type: ignore[arg-type]
)


def _container_ports(ports: list[str]) -> list[str]:
    return sorted(p.rsplit(":", 1)[-1] for p in ports)


def test_the_standin_override_swaps_only_images_and_host_ports() -> None:
    override = yaml.load(STANDINS.read_text(), Loader=_OverrideLoader)["services"]
    real = services()
    assert set(override) <= set(real)
    swapped = {name for name, service in override.items() if "image" in service}
    # What has no registry to come from: the rest is built from this repository (Hiker) or not
    # started (Grafana).
    assert swapped == {"rabbitmq", "redis", "postgres", "prometheus"}
    for name, service in override.items():
        assert set(service) <= {"image", "ports"}, f"{name}: {set(service)}"
        if "image" in service:
            assert service["image"].startswith("hiker-standin/"), service["image"]
        if "ports" in service:
            # The same container ports, on other host ports (the local services hold the real
            # ones), still on loopback only.
            assert _container_ports(service["ports"]) == _container_ports(real[name]["ports"])
            for port in service["ports"]:
                assert port.startswith("127.0.0.1:"), port
                assert port.split(":")[1] != port.rsplit(":", 1)[-1], port


def test_the_standin_override_replaces_the_host_ports_rather_than_adding_to_them() -> None:
    result = run_compose("-f", "compose.yaml", "-f", str(STANDINS), "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
    merged = json.loads(result.stdout)["services"]
    published = {
        name: sorted(str(p["published"]) for p in service.get("ports", []))
        for name, service in merged.items()
    }
    assert published["rabbitmq"] == ["25772", "25773"]
    assert published["redis"] == ["25779"]
    assert published["ingress"] == ["25780"]
    assert published["prometheus"] == ["25790"]
    assert published["api"] == ["25781"]
    assert merged["postgres"]["image"] == "hiker-standin/postgres:bookworm"
    assert merged["rabbitmq"]["image"] == "hiker-standin/rabbitmq:bookworm"
    assert merged["conversation"]["image"] == "hiker:dev"
