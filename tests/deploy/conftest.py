"""Deployment checks: the image recipe, compose stack, Helm chart, plain manifests, dashboards
and alerts. They need no cluster and no Docker engine, only the PyPI packages helm-python-sdk,
kubernetes-validate, check-jsonschema and PyYAML, plus promtool and prometheus (Debian package
`prometheus`) for the Prometheus checks, which skip without them unless CI is set.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The test modules import deploy_support by name; make that work under any pytest import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from deploy_support import require_tool


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_tool("promtool")
