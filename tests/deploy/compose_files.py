"""What the compose tests share: the compose file's services, and compose run as a newcomer
runs it."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import yaml
from deploy_support import (
    COMPOSE,
    compose_cli,
)

COMPOSE_FILE = COMPOSE / "compose.yaml"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def run_compose(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Compose as a newcomer runs it: in deploy/compose, on the example .env, with none of the
    caller's variables but those given (the shell wins over .env)."""
    clean = {key: os.environ[key] for key in ("PATH", "HOME") if key in os.environ}
    return subprocess.run(
        [*compose_cli(), "--env-file", ".env.example", *args],
        cwd=COMPOSE,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
