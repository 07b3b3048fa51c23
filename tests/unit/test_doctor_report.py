"""How ``hiker doctor`` reports: exit codes, the table, JSON, and no secret in any of them."""

from __future__ import annotations

import json

from hiker.core.observability import redact
from hiker.tools.doctor.cli import default_ingress_url
from hiker.tools.doctor.report import (
    Finding,
    Status,
    exit_code,
    render_json,
    render_table,
    scrub,
    secret_values,
)

FINDINGS = [
    Finding("config: sender", Status.OK, "all variables valid"),
    Finding("queue: hiker.poison", Status.WARN, "not declared yet", "start the services"),
    Finding(
        "queue: hiker.timers.wait.600000ms",
        Status.FAIL,
        "exists with different arguments: inequivalent arg 'x-dead-letter-exchange' " * 3,
        "delete it and restart conversation",
    ),
]


def test_exit_code_fails_only_on_failures_unless_strict() -> None:
    assert exit_code(FINDINGS[:1]) == 0
    assert exit_code(FINDINGS[:2]) == 0
    assert exit_code(FINDINGS[:2], strict=True) == 1
    assert exit_code(FINDINGS) == 1


def test_table_shows_every_row_with_its_fix_and_a_summary() -> None:
    table = render_table(FINDINGS, width=100)
    lines = table.splitlines()
    assert lines[0].split() == ["CHECK", "STATUS", "DETAIL", "/", "FIX"]
    assert lines[1].startswith("config: sender")
    assert " OK " in lines[1]
    assert "fix: delete it and restart conversation" in table
    assert "fix:" not in lines[1]  # a passing row needs no fix
    assert all(len(line) <= 100 for line in lines)
    assert lines[-1] == "1 failed, 1 warning, 1 ok"


def test_json_is_machine_readable() -> None:
    report = json.loads(render_json(FINDINGS))
    assert report["ok"] is False
    assert report["checks"][2] == {
        "check": "queue: hiker.timers.wait.600000ms",
        "status": "FAIL",
        "detail": FINDINGS[2].detail,
        "fix": "delete it and restart conversation",
    }


def test_secret_values_are_scrubbed_from_every_finding() -> None:
    environ = {
        "HIKER_ACCESS_TOKEN": "EAAG-secret-token",
        "HIKER_APP_SECRET": "app-secret-value",
        "HIKER_APP_SECRETS": "second-app-secret, rotated-secret",
        "HIKER_AMQP_URL": "amqp://hiker:broker-password@rabbit:5672/prod",
        "HIKER_REDIS_URL": "redis://:redis-password@redis:6379/0",
    }
    leaky = Finding(
        "graph: access token",
        Status.FAIL,
        "Graph said: token EAAG-secret-token is bad; broker-password; redis-password",
        "app-secret-value or rotated-secret or second-app-secret",
    )
    [clean] = scrub([leaky], secret_values(environ))
    assert clean.detail == "Graph said: token *** is bad; ***; ***"
    assert clean.fix == "*** or *** or ***"


def test_default_ingress_url_follows_the_http_port() -> None:
    assert default_ingress_url({}) == "http://127.0.0.1:8080/webhook"
    assert default_ingress_url({"HIKER_HTTP_PORT": "9000"}) == "http://127.0.0.1:9000/webhook"


def test_urls_are_shown_without_their_password() -> None:
    assert redact("amqp://hiker:s3cret@rabbit:5672/prod") == "amqp://hiker:***@rabbit:5672/prod"
    assert redact("redis://:s3cret@redis/0") == "redis://:***@redis/0"
    assert redact("redis://redis:6379/0") == "redis://redis:6379/0"
