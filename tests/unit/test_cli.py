"""``hiker``: every command is listed and helps, and a command loads only its own code."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from hiker import cli

# Runs ``hiker ARGS`` up to the point where a service would start serving, then prints the hiker
# modules the process imported.
PROBE = """
import json, sys
from hiker import cli
from hiker.core import runtime
runtime.run = lambda main: main.close()
try:
    cli.main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(name for name in sys.modules if name.startswith("hiker"))))
"""
TOOL_PACKAGES = ("hiker.tools", "hiker.conversation.rulesfile")


def imported_by(*argv: str, **env: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    modules: list[str] = json.loads(result.stdout.splitlines()[-1])
    return modules


def test_a_service_loads_no_tool() -> None:
    secrets = {"HIKER_APP_SECRET": "cli-test-app-secret-0123456789ab"}
    modules = imported_by("ingress", **secrets, HIKER_VERIFY_TOKEN="cli-test-verify-token")
    assert "hiker.ingress.app" in modules  # the service was loaded
    assert [m for m in modules if m.startswith(TOOL_PACKAGES)] == []
    assert [m for m in modules if m.startswith(("hiker.conversation", "hiker.sender"))] == []


def test_events_is_a_service_that_loads_only_its_own_code() -> None:
    modules = imported_by(
        "events",
        HIKER_EVENTS_URLS="https://crm.example.com/hooks/hiker",
        HIKER_EVENTS_SECRET="cli-test-events-secret-0123456789",
    )
    assert "hiker.events.app" in modules
    others = ("hiker.tools", "hiker.conversation", "hiker.sender", "hiker.ingress", "hiker.api")
    assert [m for m in modules if m.startswith(others)] == []


def test_help_loads_no_tool_and_a_tool_loads_only_itself() -> None:
    assert [m for m in imported_by("--help") if m.startswith(TOOL_PACKAGES)] == []
    poison = {m for m in imported_by("poison", "--help") if m.startswith("hiker.tools.")}
    assert "hiker.tools.poison.cli" in poison
    assert {m.split(".")[2] for m in poison} == {"poison", "heldqueue", "options", "table"}


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    for command in (*cli.SERVICES, *cli.TOOLS, "simulate", "dev"):
        assert command in shown


@pytest.mark.parametrize("tool", sorted(cli.TOOLS))
def test_every_tool_has_its_own_help(tool: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main([tool, "--help"])
    assert exited.value.code == 0
    assert f"usage: hiker {tool}" in capsys.readouterr().out


def test_the_command_is_the_first_word_that_names_one() -> None:
    assert cli.chosen_command(["parked", "list", "--reason", "doctor"]) == "parked"
    assert cli.chosen_command(["--help"]) is None
