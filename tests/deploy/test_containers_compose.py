"""The compose stack run for real (``make test-containers``): deploy/compose/compose.yaml with the
stand-in override, on the images that target built. Every service must become healthy, the
documented ``docker compose exec ingress hiker simulate ...`` must get its reply, Prometheus must
scrape every Hiker service, and a pending follow-up must survive ``docker compose restart
rabbitmq``. The stack is torn down, volumes included, whatever happens.

Runs only when asked for (``-m containers``) with DOCKER_HOST naming an engine that has the
images; ``make test-containers`` arranges both.
"""

from __future__ import annotations

import functools
import json
import os
import re
import secrets
import shlex
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy_support import COMPOSE, REPO

pytestmark = [pytest.mark.containers, pytest.mark.timeout(900)]

OVERRIDE = COMPOSE / "standins" / "compose.standins.yaml"
# Not compose.yaml's own project name: a developer's `docker compose up` stack stays untouched.
PROJECT = "hiker-containers-test"
# Everything but Grafana, which has no stand-in (see the override file).
STACK = (
    "rabbitmq", "redis", "postgres", "graph-mock", "aimock", "ingress", "conversation", "sender",
    "api", "prometheus",
)  # fmt: skip
HIKER_JOBS = (
    "hiker-ingress", "hiker-conversation", "hiker-sender", "hiker-api", "hiker-graph-mock",
    "hiker-aimock",
)  # fmt: skip
API_PORT = os.environ.get("HIKER_CT_API_PORT", "25781")
# The example .env's idle timeout: the follow-up is due this long after a hello.
IDLE_SECONDS = 20
PROMETHEUS_PORT = os.environ.get("HIKER_CT_PROMETHEUS_PORT", "25790")


@functools.cache
def newcomer_env() -> dict[str, str]:
    """The example .env as a newcomer fills it in: Hiker's secrets replaced by random ones (the
    services refuse the example's placeholders), everything else as shipped."""
    pairs = {}
    for line in (COMPOSE / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            hiker_secret = key.startswith("HIKER_") and re.search(r"TOKEN|SECRET", key)
            pairs[key] = secrets.token_hex(40) if hiker_secret else value
    return pairs


@functools.cache
def newcomer_env_file() -> Path:
    path = Path(tempfile.mkdtemp(prefix="hiker-ct-")) / ".env"
    path.write_text("".join(f"{key}={value}\n" for key, value in newcomer_env().items()))
    return path


def compose(
    *args: str,
    timeout: float = 120,
    check: bool = True,
    also: tuple[Path, ...] = (),
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`docker compose` on the real file plus the override (and the files ``also`` names), with
    the .env a newcomer makes of the example, and none of the caller's HIKER_* variables (the
    shell would win over .env) but those of ``extra_env``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key in ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_BUILDKIT")
        or key.startswith("HIKER_CT_")
    } | (extra_env or {})
    command = [
        "docker", "compose",
        "-f", str(COMPOSE / "compose.yaml"), "-f", str(OVERRIDE),
        *(arg for path in also for arg in ("-f", str(path))),
        "--env-file", str(newcomer_env_file()),
        "-p", PROJECT,
        *args,
    ]  # fmt: skip
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"docker compose {' '.join(args)} exited {result.returncode}:\n"
            f"{result.stdout[-3000:]}{result.stderr[-3000:]}",
            pytrace=False,
        )
    return result


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> float:
    """Polls ``check`` until it holds; returns when it did (monotonic seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(1)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}", pytrace=False)


def states() -> dict[str, dict[str, Any]]:
    output = compose("ps", "--all", "--format", "json").stdout
    rows = [json.loads(line) for line in output.splitlines() if line.strip()]
    return {row["Service"]: row for row in rows}


def all_healthy() -> bool:
    found = states()
    return all(
        found.get(name, {}).get("State") == "running" and found[name].get("Health") == "healthy"
        for name in STACK
    )


def sent_to(user: str) -> list[str]:
    """Texts graph-mock accepted for ``user``, read inside its container (it publishes no port)."""
    script = (
        "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen("
        f"'http://127.0.0.1:8090/_mock/messages?to={user}', timeout=5).read().decode())"
    )
    result = compose("exec", "-T", "graph-mock", "python", "-c", script, check=False)
    if result.returncode != 0:
        return []
    return [message["text"] for message in json.loads(result.stdout)]


def documented_simulate() -> list[str]:
    """The hello the deployment guide tells a newcomer to send, as argv for `compose exec`."""
    text = (REPO / "docs" / "deployment.md").read_text()
    (line,) = re.findall(r"^docker compose exec ingress hiker simulate .*$", text, re.M)
    argv = shlex.split(line)[2:]  # after `docker compose`
    # -T: no terminal here. The same command, only without a TTY.
    return [argv[0], "-T", *argv[1:]]


def simulate_hello(user: str) -> None:
    argv = documented_simulate()
    argv[argv.index("--from") + 1] = user
    result = compose(*argv)
    assert result.stdout.startswith("200"), result.stdout + result.stderr


def prometheus(path: str, **params: str) -> Any:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    url = f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/{path}{query}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)["data"]


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest) -> Iterator[None]:
    if not os.environ.get("DOCKER_HOST"):
        pytest.fail("DOCKER_HOST is not set: run these through make test-containers", pytrace=False)
    compose("down", "--volumes", "--remove-orphans", check=False)  # an interrupted run's leftovers
    try:
        compose("up", "--detach", "--wait", "--wait-timeout", "300", *STACK, timeout=420)
        yield
    finally:
        if request.session.testsfailed:
            logs = compose("logs", "--no-color", "--tail", "40", check=False)
            print(logs.stdout[-20000:])
        compose("down", "--volumes", "--remove-orphans", timeout=180, check=False)


def test_every_service_comes_up_healthy(stack: None) -> None:
    found = states()
    for name in STACK:
        assert found[name]["State"] == "running", found[name]
        assert found[name]["Health"] == "healthy", found[name]
    images = {name: found[name]["Image"] for name in STACK}
    assert images["rabbitmq"].startswith("hiker-standin/"), images
    hiker = ("graph-mock", "aimock", "ingress", "conversation", "sender", "api")
    assert {images[name] for name in hiker} == {"hiker:dev"}


def test_the_documented_hello_gets_its_reply(stack: None) -> None:
    argv = documented_simulate()
    user = argv[argv.index("--from") + 1]
    result = compose(*argv)
    assert result.stdout.startswith("200"), result.stdout + result.stderr
    wait_for("the reply at graph-mock", lambda: "hello to you too" in sent_to(user), timeout=30)
    assert sent_to(user) == ["hello to you too"]
    # The api recorded both in PostgreSQL, and tells them with the .env's token.
    wait_for("both messages in the api's history", lambda: len(history(user)) == 2, timeout=30)
    assert [(m["direction"], m["text"]) for m in history(user)] == [
        ("out", "hello to you too"),
        ("in", "hello"),
    ]


def history(user: str) -> list[dict[str, Any]]:
    token = newcomer_env()["HIKER_API_TOKEN"]
    request = urllib.request.Request(
        f"http://127.0.0.1:{API_PORT}/v1/conversations/100000000000001/{user}/messages",
        headers={"Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            data: list[dict[str, Any]] = json.load(response)["data"]
            return data
    except OSError:
        return []


def test_prometheus_scrapes_every_hiker_service(stack: None) -> None:
    def all_up() -> bool:
        targets = prometheus("targets", state="active")["activeTargets"]
        health = {t["labels"]["job"]: t["health"] for t in targets}
        return all(health.get(job) == "up" for job in (*HIKER_JOBS, "rabbitmq"))

    # The scrape interval is compose's own (15 s): a target is first seen up within two.
    wait_for("every Hiker target up in Prometheus", all_up, timeout=60)
    result = prometheus("query", query='count(hiker_webhooks_received_total{job="hiker-ingress"})')
    assert result["result"], "ingress's counters are stored, not only its target listed"


def test_a_pending_followup_survives_a_rabbitmq_restart(stack: None) -> None:
    user = "15550002222"
    said = time.monotonic()
    simulate_hello(user)
    wait_for("the reply", lambda: "hello to you too" in sent_to(user), timeout=30)
    compose("restart", "rabbitmq", timeout=120)
    restarted = time.monotonic()
    # Otherwise the timer may have fired before the broker went down, and nothing is proven.
    assert restarted - said < IDLE_SECONDS, f"the restart took until {restarted - said:.0f}s"
    assert sent_to(user) == ["hello to you too"], "the follow-up came before it was due"
    wait_for("every service healthy again", all_healthy, timeout=180)
    wait_for("the follow-up", lambda: "are you there" in sent_to(user), timeout=120)
    assert sent_to(user) == ["hello to you too", "are you there"]


BOT = """from hiker.bot import Bot, Text

bot = Bot()


@bot.on_text("ping")
async def ping(msg, conv):
    return Text(body="pong from the bot")
"""


def bot_folder() -> Path:
    """A one-file bot the container's user (uid 10001) can read."""
    folder = Path(tempfile.mkdtemp(prefix="hiker-ct-bot-"))
    (folder / "pingbot.py").write_text(BOT)
    folder.chmod(0o755)
    (folder / "pingbot.py").chmod(0o644)
    return folder


def ping_answered(user: str) -> None:
    argv = documented_simulate()
    argv[argv.index("--from") + 1] = user
    argv[argv.index("--text") + 1] = "ping"
    result = compose(*argv)
    assert result.stdout.startswith("200"), result.stdout + result.stderr
    wait_for("the bot's answer", lambda: "pong from the bot" in sent_to(user), timeout=60)


def test_a_bot_mounted_or_built_in_answers(stack: None) -> None:
    folder = bot_folder()
    mounted = {"BOT_DIR": str(folder), "HIKER_BOT": "pingbot:bot"}
    bot_compose = REPO / "deploy" / "bot" / "compose.yaml"
    try:
        # The folder mounted on the stock image (deploy/bot/compose.yaml).
        compose(
            "up", "--detach", "--wait", "--wait-timeout", "180", "conversation",
            also=(bot_compose,), extra_env=mounted, timeout=240,
        )  # fmt: skip
        ping_answered("15550003333")
        # The two-line image (deploy/bot/Dockerfile), HIKER_BOT given as compose would.
        build = subprocess.run(
            ["docker", "build", "-f", str(REPO / "deploy" / "bot" / "Dockerfile"),
             "-t", "hiker-bot:ct", str(folder)],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
        built = folder / "compose.built.yaml"
        built.write_text(
            "services:\n  conversation:\n    image: hiker-bot:ct\n"
            "    environment:\n      HIKER_BOT: pingbot:bot\n"
        )
        compose(
            "up", "--detach", "--wait", "--wait-timeout", "180", "conversation",
            also=(built,), timeout=240,
        )  # fmt: skip
        ping_answered("15550004444")
    finally:
        compose("up", "--detach", "--wait", "--wait-timeout", "180", "conversation", timeout=240)
