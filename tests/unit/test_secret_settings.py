"""Unsafe secrets refuse to start: empty, published (example files, docs, ``make run``'s
placeholders off loopback) or short; every message names the variable and never the value."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr, field_validator

from hiker.cli import build_parser
from hiker.core.secret_policy import DEV_PLACEHOLDERS, SECRET_KINDS, is_loopback, secret_problem
from hiker.core.settings import (
    ApiSettings,
    CommonSettings,
    ConfigError,
    ConversationSettings,
    EventsSettings,
    IngressSettings,
    SenderSettings,
    UnsafeSecret,
    check_secret,
    load_settings,
)

REPO = Path(__file__).resolve().parents[2]
APP_SECRET = "5f1c0e6b2a9d4e7c8b3a1f0e6d2c9b4a"
VERIFY_TOKEN = "verify-token-of-these-tests"
ACCESS_TOKEN = "EAAsecret-settings-" + "0123456789abcdef" * 4
API_TOKEN = "api-token-of-these-tests-0001"
EVENTS_SECRET = "events-secret-of-these-tests-0123"
GOOD = {
    "HIKER_EVENTS_URLS": "https://crm.example.com/hooks/hiker",
    "HIKER_EVENTS_SECRET": EVENTS_SECRET,
    "HIKER_APP_SECRET": APP_SECRET,
    "HIKER_VERIFY_TOKEN": VERIFY_TOKEN,
    "HIKER_ACCESS_TOKEN": ACCESS_TOKEN,
    "HIKER_API_TOKEN": API_TOKEN,
}
SERVICE_OF = {
    "HIKER_APP_SECRET": IngressSettings,
    "HIKER_VERIFY_TOKEN": IngressSettings,
    "HIKER_ACCESS_TOKEN": SenderSettings,
    "HIKER_API_TOKEN": ApiSettings,
    "HIKER_EVENTS_SECRET": EventsSettings,
}


def refusal(cls: type[CommonSettings], env: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(cls, env)
    return str(caught.value)


@pytest.mark.parametrize("name", sorted(SERVICE_OF))
@pytest.mark.parametrize("value", ["", "   ", "Q", "change-me", "EAAG...", "Z" * 80])
def test_an_empty_placeholder_or_short_secret_is_refused_by_name(name: str, value: str) -> None:
    message = refusal(SERVICE_OF[name], {**GOOD, name: value})
    assert re.search(rf"{name}\b.* is ", message), message
    others = set(GOOD) - {name}
    assert not any(other in message for other in others), message
    if value.strip():
        assert value not in message.replace(name, "")


def test_an_empty_app_secret_no_longer_makes_every_signature_valid() -> None:
    # Blank is unset (compose and charts pass a variable left blank as ""): one is required.
    message = refusal(IngressSettings, {**GOOD, "HIKER_APP_SECRET": ""})
    assert "HIKER_APP_SECRET is required but not set" in message


@pytest.mark.parametrize("name", sorted(SERVICE_OF))
def test_each_kind_has_a_minimum_that_real_secrets_meet(name: str) -> None:
    least = SECRET_KINDS[name].min_length
    long_enough = ("k7" * least)[:least]
    load_settings(SERVICE_OF[name], {**GOOD, name: long_enough})
    message = refusal(SERVICE_OF[name], {**GOOD, name: long_enough[:-1]})
    assert f"{name} is shorter than" in message
    assert f"{least} characters" in message
    assert SECRET_KINDS["HIKER_APP_SECRET"].min_length == 32  # Meta's are 32 hex characters
    assert SECRET_KINDS["HIKER_API_TOKEN"].min_length >= 24


def _example_values() -> list[tuple[str, str, str]]:
    """(file, variable, value) of every secret an example file, chart value file or doc shows."""
    found = []
    texts = [*REPO.glob("docs/*.md"), REPO / "README.md", *REPO.glob("deploy/**/*.example")]
    assignment = re.compile(r"^\s*(HIKER_[A-Z_]+)=(\S+)", re.M)
    for path in texts:
        for name, value in assignment.findall(path.read_text()):
            if name in SECRET_KINDS and name not in ("HIKER_ACCESS_TOKENS", "HIKER_APP_SECRETS"):
                found.append((str(path.relative_to(REPO)), name, value))
    keys = {
        "appSecret": "HIKER_APP_SECRET",
        "verifyToken": "HIKER_VERIFY_TOKEN",
        "accessToken": "HIKER_ACCESS_TOKEN",
        "apiToken": "HIKER_API_TOKEN",
    }
    for path in REPO.glob("charts/hiker/ci/*.yaml"):
        secret = (yaml.safe_load(path.read_text()) or {}).get("secret") or {}
        for key, name in keys.items():
            if secret.get(key):
                found.append((str(path.relative_to(REPO)), name, str(secret[key])))
    return found


def test_every_secret_published_in_the_repository_is_refused() -> None:
    examples = _example_values()
    files = {path for path, _, _ in examples}
    assert {"deploy/compose/.env.example", "deploy/k8s/secrets.env.example"} <= files
    assert "docs/meta-setup.md" in files
    assert "charts/hiker/ci/default-values.yaml" in files
    for path, name, value in examples:
        assert secret_problem(name, value, exposed=["HIKER_HTTP_HOST"]), (path, name)


def test_make_runs_placeholders_start_every_service_on_loopback() -> None:
    for cls in (IngressSettings, ConversationSettings, SenderSettings, ApiSettings):
        settings = load_settings(cls, dict(DEV_PLACEHOLDERS))
        assert settings.metrics_host == "127.0.0.1"
    assert load_settings(IngressSettings, dict(DEV_PLACEHOLDERS)).http_host == "127.0.0.1"
    assert load_settings(ApiSettings, dict(DEV_PLACEHOLDERS)).api_host == "127.0.0.1"
    for host in ("localhost", "::1", "127.0.0.2"):
        env = {**DEV_PLACEHOLDERS, "HIKER_HTTP_HOST": host, "HIKER_METRICS_HOST": host}
        load_settings(IngressSettings, env)


@pytest.mark.parametrize(
    ("cls", "host"),
    [
        (IngressSettings, "HIKER_HTTP_HOST"),
        (IngressSettings, "HIKER_METRICS_HOST"),
        (SenderSettings, "HIKER_METRICS_HOST"),
        (ApiSettings, "HIKER_API_HOST"),
    ],
)
@pytest.mark.parametrize("address", ["0.0.0.0", "::", "10.1.2.3", "", "hiker.example.com"])
def test_make_runs_placeholders_are_refused_once_a_listener_leaves_loopback(
    cls: type[CommonSettings], host: str, address: str
) -> None:
    message = refusal(cls, {**DEV_PLACEHOLDERS, host: address})
    assert "development placeholder" in message
    assert f"{host} is not" in message
    assert "loopback" in message
    assert not any(value in message for value in DEV_PLACEHOLDERS.values())
    # Real secrets listen anywhere.
    load_settings(cls, {**GOOD, host: address})


def test_a_placeholder_of_another_variable_is_refused_even_on_loopback() -> None:
    env = {**GOOD, "HIKER_VERIFY_TOKEN": DEV_PLACEHOLDERS["HIKER_APP_SECRET"]}
    assert "HIKER_VERIFY_TOKEN is another variable's" in refusal(IngressSettings, env)


def test_per_number_tokens_are_checked_entry_by_entry(tmp_path: Path) -> None:
    listed = f"1001={ACCESS_TOKEN},1002=change-me"
    message = refusal(SenderSettings, {"HIKER_ACCESS_TOKENS": listed})
    assert "HIKER_ACCESS_TOKENS (1002) is an example value" in message
    assert ACCESS_TOKEN not in message
    (tmp_path / "1001").write_text(ACCESS_TOKEN)
    (tmp_path / "1002").write_text("EAAshort\n")
    message = refusal(SenderSettings, {"HIKER_ACCESS_TOKENS_DIR": str(tmp_path)})
    assert "HIKER_ACCESS_TOKENS_DIR (1002) is shorter than a Graph access token" in message
    assert "EAAshort" not in message
    (tmp_path / "1002").write_text("")
    assert "HIKER_ACCESS_TOKENS_DIR (1002) is empty" in refusal(
        SenderSettings, {"HIKER_ACCESS_TOKENS_DIR": str(tmp_path)}
    )


class _ListSettings(IngressSettings):
    """How a list of secrets (HIKER_APP_SECRETS) uses check_secret from its own validator."""

    app_secrets: SecretStr | None = None

    @field_validator("app_secrets")
    @classmethod
    def _each_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            for position, item in enumerate(value.get_secret_value().split(","), start=1):
                check_secret("HIKER_APP_SECRETS", item.strip(), where=f"entry {position}")
        return value


def test_a_list_variable_reports_its_entry_as_the_service_would() -> None:
    env = {**GOOD, "HIKER_APP_SECRETS": f"{APP_SECRET}, short-one"}
    message = refusal(_ListSettings, env)
    assert message == (
        "configuration error: HIKER_APP_SECRETS (entry 2) is shorter than a Meta app secret "
        "(32 characters at least): copy it from the Meta app (App settings > Basic: 32 hex "
        "characters)"
    )
    with pytest.raises(UnsafeSecret) as caught:  # outside a validator: a ConfigError too
        check_secret("HIKER_API_TOKENS", "", where="entry 1")
    assert isinstance(caught.value, ConfigError)
    assert str(caught.value).startswith("HIKER_API_TOKENS (entry 1) is empty")


def test_simulate_signs_with_make_runs_placeholder_by_default() -> None:
    args = build_parser("simulate").parse_args(["simulate"])
    assert args.dev_secret == DEV_PLACEHOLDERS["HIKER_APP_SECRET"]


def test_loopback_is_an_address_only_this_machine_reaches() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "", "192.168.1.2", "example.com"]))


def test_a_service_refused_at_start_exits_naming_the_variable() -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        **GOOD,
        "HIKER_APP_SECRET": "",
        "HIKER_HTTP_HOST": "0.0.0.0",
    }
    result = subprocess.run(
        [sys.executable, "-m", "hiker", "ingress"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(
        "hiker ingress: configuration error: HIKER_APP_SECRET is required but not set"
    )
    assert VERIFY_TOKEN not in result.stderr


def test_a_placeholder_passes_only_where_the_listeners_are_known_to_be_loopback() -> None:
    placeholder = DEV_PLACEHOLDERS["HIKER_APP_SECRET"]
    assert secret_problem("HIKER_APP_SECRET", placeholder, exposed=[]) is None
    # A list validator does not know the hosts: it refuses, as off loopback.
    unknown = secret_problem("HIKER_APP_SECRETS", placeholder, where="entry 1")
    assert unknown is not None
    assert unknown.startswith("HIKER_APP_SECRETS (entry 1) is make run's development placeholder")
    assert secret_problem("HIKER_APP_SECRETS", placeholder, exposed=[]) is None
