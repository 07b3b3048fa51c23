"""The live-metrics test's stack: services and Prometheus as processes, and what it posts."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy_support import DASHBOARDS, require_tool
from tests.daemons import Daemons
from tests.support import metric_value, wait_until_sync

APP_SECRET = "live-test-app-secret-0123456789abc"
VERIFY_TOKEN = "live-test-verify-token"
ACCESS_TOKEN = "live-test-access-token-" + "0123456789abcdef" * 3
IDLE_SECONDS = 2
PHONE_NUMBER_ID = "100000000000001"
USER_OK = "15550001001"
USER_RETRY = "15550001002"
USER_PARK = "15550001003"
USER_STALE = "15550001004"  # writes from more than 24 h ago (a message processed a day late)
USER_RULES = "15550001005"  # tries a rule added while conversation runs
USER_AI = "15550001006"  # writes what no rule takes: the AI responder answers, then over budget


def http(
    url: str,
    *,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    method: str | None = None,
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    wait_until_sync(check, timeout, what, every=0.25, tolerate=(OSError,))


class Processes:
    """Child processes with their output in files, stopped (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self.daemons = Daemons()

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.running[name] = self.daemons.start(argv, log=self.logs / f"{name}.log", env=env)

    def check_alive(self) -> None:
        for name, process in self.running.items():
            if process.poll() is not None:
                pytest.fail(f"{name} exited ({process.returncode}):\n{self.tail(name)}")

    def tail(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        self.daemons.stop_all()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    running = Processes(tmp_path)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def redis_prefix_cleaned(services: Any) -> Iterator[str]:
    prefix = f"hiker-live-{uuid.uuid4().hex[:12]}:"
    yield prefix
    import redis

    client = redis.Redis.from_url(services.redis_url, socket_connect_timeout=3)
    try:
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)
    finally:
        client.close()


def hiker_executable() -> str:
    beside = Path(sys.executable).parent / "hiker"
    if beside.exists():
        return str(beside)
    return require_tool("hiker")


def panel_queries() -> Iterator[tuple[str, str]]:
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                yield f"{dashboard['title']} / {panel['title']}", target["expr"]


def concrete(expr: str) -> str:
    """The query as Grafana sends it with 'All' selected; windows cover the whole run."""
    return (
        expr.replace("$__rate_interval", "5m")
        .replace("$__range", "1h")
        .replace("$namespace", ".*")
        .replace("$job", ".*")
    )


def simulate(
    hiker: str,
    env: dict[str, str],
    url: str,
    user: str,
    text: str,
    wamid: str | None = None,
    secret: str = APP_SECRET,
) -> int:
    argv = [
        hiker,
        "simulate",
        "--url",
        url,
        "--from",
        user,
        "--text",
        text,
        "--phone-number-id",
        PHONE_NUMBER_ID,
    ]
    if wamid:
        argv += ["--wamid", wamid]
    result = subprocess.run(
        argv,
        env={**env, "HIKER_APP_SECRET": secret},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.returncode


def post_statuses(url: str) -> int:
    """Status webhooks: what `hiker simulate` does not send (it only sends text messages)."""
    from hiker.core.signature import SIGNATURE_HEADER, sign
    from hiker.tools.simulate import encode, messages_change, webhook_body

    now = str(int(time.time()))
    statuses = [
        {
            "id": "wamid.LIVE1",
            "status": "delivered",
            "timestamp": now,
            "recipient_id": USER_OK,
            "pricing": {"pricing_model": "PMP", "type": "regular", "category": "utility"},
        },
        {
            "id": "wamid.LIVE2",
            "status": "failed",
            "timestamp": now,
            "recipient_id": USER_PARK,
            "errors": [{"code": 131047, "title": "Re-engagement message"}],
        },
    ]
    body = encode(webhook_body(messages_change(statuses=statuses, phone_number_id=PHONE_NUMBER_ID)))
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(APP_SECRET.encode(), body),
    }
    status, _ = http(url, data=body, headers=headers, method="POST")
    return status


def post_template_paused(url: str) -> int:
    """Meta's message_template_status_update pausing a template (the template panel, the
    HikerTemplatePaused alert)."""
    from hiker.core.signature import SIGNATURE_HEADER, sign
    from hiker.tools.simulate import encode, template_change, template_webhook

    body = encode(template_webhook(template_change("live_promo", event="PAUSED")))
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(APP_SECRET.encode(), body),
    }
    status, _ = http(url, data=body, headers=headers, method="POST")
    return status


def post_stale_message(url: str) -> int:
    """A text message whose Meta timestamp is 25 h old: outside the customer service window."""
    from hiker.core.signature import SIGNATURE_HEADER, sign
    from hiker.tools.simulate import encode, messages_change, text_message, webhook_body

    message = text_message(USER_STALE, "hello", timestamp=int(time.time()) - 25 * 3600)
    body = encode(webhook_body(messages_change([message], phone_number_id=PHONE_NUMBER_ID)))
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(APP_SECRET.encode(), body),
    }
    status, _ = http(url, data=body, headers=headers, method="POST")
    return status


def reloads(metrics_url: str, outcome: str) -> float:
    """conversation's rules-file reloads with this outcome, from its /metrics page."""
    page = http(metrics_url)[1].decode()
    return metric_value(page, "hiker_rules_reloads_total", outcome=outcome)


def prom_query(base: str, expr: str) -> list[dict[str, Any]]:
    status, body = http(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    answer = json.loads(body)
    assert status == 200, answer
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result
