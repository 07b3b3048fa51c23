"""The dashboards against the real thing: run graph-mock, aimock, ingress, conversation, sender
and the api (on SQLite) as processes on a real RabbitMQ (a vhost of their own) and Redis (a key
prefix of their own), play a short scripted conversation with `hiker simulate`, scrape the
services with a real Prometheus, and show that every Hiker panel's query returns data.

The conversation is chosen so that every series a panel reads exists: a reply, a retried send
(graph-mock answers 500 once), a parked send (131047), a duplicate webhook, a superseded and a
fired idle timer with its follow-up, a bad signature, a verification, failed and priced
delivered statuses, a paused template (the cost row multiplies by compose's price table), a
message older than the 24-hour window (its reply and follow-up are skipped), conversation
running on deploy/compose/rules.yaml with one edit applied and one rejected, and a burst of two
messages no rule takes, answered by the model (hiker aimock) in one call, then one more over the
user's daily token budget. Rare events are provoked rather than excused, so no panel is exempt.
RabbitMQ panels are left out: this Prometheus scrapes only the Hiker services.
"""

from __future__ import annotations

import json
import math
import os
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import COMPOSE, PROMETHEUS, require_tool
from live_stack import (  # processes, redis_prefix_cleaned: fixtures the test takes
    ACCESS_TOKEN,
    APP_SECRET,
    IDLE_SECONDS,
    USER_AI,
    USER_OK,
    USER_PARK,
    USER_RETRY,
    USER_RULES,
    VERIFY_TOKEN,
    Processes,
    concrete,
    hiker_executable,
    http,
    panel_queries,
    post_stale_message,
    post_statuses,
    post_template_paused,
    processes,
    prom_query,
    redis_prefix_cleaned,
    reloads,
    simulate,
    wait_for,
)
from tests.support import free_port

__all__ = ["processes", "redis_prefix_cleaned"]  # fixtures

pytestmark = [pytest.mark.deploy, pytest.mark.integration, pytest.mark.slow]

API_TOKEN = "live-test-api-token-0123456"
JOBS = ("ingress", "conversation", "sender", "api", "events")
# Where hiker events posts: the Graph mock's port (what it answers does not matter here).
EVENTS_SECRET = "live-metrics-events-secret-" + "9f2c4e1a" * 2


def test_every_hiker_panel_has_data_from_the_running_services(
    amqp_url: str, services: Any, redis_prefix_cleaned: str, processes: Processes, tmp_path: Path
) -> None:
    prometheus = require_tool("prometheus")
    hiker = hiker_executable()
    # Conversation runs on the rules file compose ships (a copy, edited below).
    rules_file = tmp_path / "rules.yaml"
    shipped_rules = (COMPOSE / "rules.yaml").read_text()
    rules_file.write_text(shipped_rules)
    ports = {
        name: free_port()
        for name in (
            "webhook",
            "graph",
            "prometheus",
            "api-http",
            *JOBS,
            "graph-mock",
            "ai",
            "aimock",
        )
    }
    common = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HIKER_AMQP_URL": amqp_url,
        "HIKER_REDIS_URL": services.redis_url,
        "HIKER_REDIS_PREFIX": redis_prefix_cleaned,
        "HIKER_LOG_LEVEL": "WARNING",
        "HIKER_METRICS_HOST": "127.0.0.1",
    }
    graph = f"http://127.0.0.1:{ports['graph']}"
    processes.start(
        "aimock",
        [hiker, "aimock"],
        {
            **common,
            "HIKER_METRICS_PORT": str(ports["aimock"]),
            "HIKER_AIMOCK_PORT": str(ports["ai"]),
        },
    )
    webhook = f"http://127.0.0.1:{ports['webhook']}/webhook"
    processes.start(
        "graph-mock",
        [hiker, "graph-mock"],
        {
            **common,
            "HIKER_METRICS_PORT": str(ports["graph-mock"]),
            "HIKER_GRAPH_MOCK_HOST": "127.0.0.1",
            "HIKER_GRAPH_MOCK_PORT": str(ports["graph"]),
            "HIKER_ACCESS_TOKEN": ACCESS_TOKEN,
        },
    )
    processes.start(
        "ingress",
        [hiker, "ingress"],
        {
            **common,
            "HIKER_METRICS_PORT": str(ports["ingress"]),
            "HIKER_HTTP_HOST": "127.0.0.1",
            "HIKER_HTTP_PORT": str(ports["webhook"]),
            "HIKER_APP_SECRET": APP_SECRET,
            "HIKER_VERIFY_TOKEN": VERIFY_TOKEN,
        },
    )
    processes.start(
        "conversation",
        [hiker, "conversation"],
        {
            **common,
            "HIKER_METRICS_PORT": str(ports["conversation"]),
            "HIKER_IDLE_TIMEOUT_SECONDS": str(IDLE_SECONDS),
            "HIKER_RULES_FILE": str(rules_file),
            "HIKER_RULES_RELOAD_SECONDS": "0.5",
            "HIKER_AI_BASE_URL": f"http://127.0.0.1:{ports['ai']}/v1",
            "HIKER_AI_MODEL": "hiker-mock",
            # Long enough for two `hiker simulate` runs to land in one burst.
            "HIKER_AI_DEBOUNCE_MS": "5000",
            # The first turn's usage spends it: the user's next turn is over budget.
            "HIKER_AI_MAX_TOKENS_PER_USER_DAY": "1",
        },
    )
    processes.start(
        "sender",
        [hiker, "sender"],
        {
            **common,
            "HIKER_METRICS_PORT": str(ports["sender"]),
            "HIKER_GRAPH_BASE_URL": graph,
            "HIKER_ACCESS_TOKEN": ACCESS_TOKEN,
        },
    )
    processes.start(
        "api",
        [hiker, "api"],
        {
            **common,
            "HIKER_METRICS_PORT": str(ports["api"]),
            "HIKER_API_HOST": "127.0.0.1",
            "HIKER_API_PORT": str(ports["api-http"]),
            "HIKER_API_TOKEN": API_TOKEN,
            "HIKER_DATABASE_URL": f"sqlite:///{tmp_path / 'history.db'}",
        },
    )
    processes.start(
        "events",
        [hiker, "events"],
        {
            **common,
            "HIKER_METRICS_PORT": str(ports["events"]),
            "HIKER_EVENTS_URLS": f"{graph}/backend/events",
            "HIKER_EVENTS_SECRET": EVENTS_SECRET,
        },
    )

    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        # The price table compose ships: the cost panel multiplies by it.
        "rule_files": [str(PROMETHEUS / "prices.yml")],
        "scrape_configs": [
            {
                "job_name": f"hiker-{job}",
                "static_configs": [{"targets": [f"127.0.0.1:{ports[job]}"]}],
            }
            for job in JOBS
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    prom = f"http://127.0.0.1:{ports['prometheus']}"
    processes.start(
        "prometheus",
        [
            prometheus,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
        ],
        {"PATH": common["PATH"]},
    )

    for name in ("graph-mock", "aimock", *JOBS):
        port = ports[name]

        def ready(port: int = port) -> bool:
            processes.check_alive()
            return http(f"http://127.0.0.1:{port}/readyz")[0] == 200

        wait_for(f"{name} /readyz", ready)
    wait_for("prometheus", lambda: http(f"{prom}/-/ready")[0] == 200)

    def scraped_once() -> bool:
        # Ready is not scraped: a counter's first sample must be taken before it moves, or
        # rate() sees no increase (and a quantile panel shows NaN) however much happened.
        result = prom_query(prom, 'count(up{job=~"hiker-.*"} == 1)')
        return bool(result) and int(result[0]["value"][1]) == len(JOBS)

    wait_for("Prometheus to scrape every service once", scraped_once, timeout=30)
    time.sleep(1)

    # The script. Faults first, so the sends they target meet them.
    for user, fault in (
        (USER_RETRY, {"status": 500, "code": 1}),
        (USER_PARK, {"status": 400, "code": 131047}),
    ):
        body = json.dumps({"to": user, "responses": [fault]}).encode()
        assert (
            http(
                f"{graph}/_mock/faults",
                data=body,
                headers={"Content-Type": "application/json"},
                method="POST",
            )[0]
            == 200
        )
    env = {**common}
    assert simulate(hiker, env, webhook, USER_OK, "hello") == 0
    assert simulate(hiker, env, webhook, USER_RETRY, "hello") == 0
    assert simulate(hiker, env, webhook, USER_PARK, "hello") == 0
    # A second message right away supersedes the first timer; sending it twice is a duplicate.
    repeated = "wamid.LIVE" + uuid.uuid4().hex.upper()
    assert simulate(hiker, env, webhook, USER_OK, "echo again", wamid=repeated) == 0
    assert simulate(hiker, env, webhook, USER_OK, "echo again", wamid=repeated) == 0
    assert simulate(hiker, env, webhook, USER_OK, "hello", secret="not-the-app-secret") != 0
    assert post_statuses(webhook) == 200
    assert post_template_paused(webhook) == 200
    assert post_stale_message(webhook) == 200
    # No rule takes these: one turn of two messages for the model, then one over budget.
    assert simulate(hiker, env, webhook, USER_AI, "what can you do?") == 0
    assert simulate(hiker, env, webhook, USER_AI, "and in which languages?") == 0

    def ai_answered() -> bool:
        processes.check_alive()
        sent = json.loads(http(f"{graph}/_mock/messages?to={USER_AI}")[1])
        return any("hiker aimock" in m["text"] for m in sent)

    wait_for("the model's answer at graph-mock", ai_answered, timeout=60)
    assert simulate(hiker, env, webhook, USER_AI, "thanks, one more question") == 0

    # A rules edit is applied without a restart; a broken one is rejected and changes nothing.
    conversation_metrics = f"http://127.0.0.1:{ports['conversation']}/metrics"
    rules_file.write_text(
        shipped_rules.replace(
            "rules:\n", "rules:\n  - {name: ping, match: exact, pattern: ping, reply: pong}\n", 1
        )
    )
    wait_for("the rules edit", lambda: reloads(conversation_metrics, "applied") == 1)
    assert simulate(hiker, env, webhook, USER_RULES, "ping") == 0
    rules_file.write_text(shipped_rules.replace("match: exact", "match: sometimes"))
    wait_for("the broken edit", lambda: reloads(conversation_metrics, "rejected") == 1)
    query = urllib.parse.urlencode(
        {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "42"}
    )
    assert http(f"{webhook}?{query}") == (200, b"42")

    def conversation_done() -> bool:
        processes.check_alive()
        sent = json.loads(http(f"{graph}/_mock/messages")[1])
        texts = {(m["to"], m["text"]) for m in sent}
        return {
            (USER_OK, "are you there"),
            (USER_RETRY, "hello to you too"),
            (USER_RULES, "pong"),
        } <= texts

    wait_for("the replies and the follow-up at graph-mock", conversation_done, timeout=90)
    # A backend reads the history; and someone without the token is refused.
    conversations = f"http://127.0.0.1:{ports['api-http']}/v1/conversations"
    assert http(conversations, headers={"Authorization": f"Bearer {API_TOKEN}"})[0] == 200
    assert http(conversations)[0] == 401

    def all_series_scraped() -> bool:
        # The last counters to move: wait until Prometheus has scraped them.
        result = prom_query(
            prom,
            "sum(hiker_followups_emitted_total) * sum(hiker_messages_parked_total)"
            " * sum(hiker_api_requests_total)"
            ' * sum(hiker_sends_skipped_total{kind="followup"})'
            ' * sum(hiker_rules_reloads_total{outcome="rejected"})'
            " * sum(hiker_ai_latency_seconds_count) * sum(hiker_ai_debounced_messages_total)"
            " * sum(hiker_ai_over_budget_total)"
            ' * sum(hiker_messages_billed_total{type="regular"})'
            " * sum(hiker_messages_failed_total) * sum(hiker_template_status)",
        )
        return bool(result) and float(result[0]["value"][1]) > 0

    wait_for(
        "Prometheus to scrape the follow-up, the parked send, the skipped follow-up, the"
        " rejected rules edit, the priced and the failed statuses, the paused template"
        " and the AI turns",
        all_series_scraped,
        timeout=30,
    )
    time.sleep(3)  # a few more scrapes, so every rate() window holds the final values twice

    empty = []
    checked = 0
    for title, expr in panel_queries():
        if "rabbitmq_" in expr:
            continue
        checked += 1
        result = prom_query(prom, concrete(expr))
        values = [float(series["value"][1]) for series in result]
        if not values or (
            "histogram_quantile" in expr and not any(math.isfinite(v) for v in values)
        ):
            empty.append(f"{title}: {expr} -> {values}")
    assert checked >= 20
    assert not empty, "panels without data:\n" + "\n".join(empty)
