"""What the chart tests share: the CI values files, values with some paths set, and what a
rendered NetworkPolicy admits and lets out."""

from __future__ import annotations

import copy
from typing import Any

import yaml
from deploy_support import CHART, of_kind, values_file

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
