"""``make run``: every service as a child process against the local RabbitMQ and Redis.

Checks the broker and Redis first and explains how to start them instead of printing a
traceback; prints each child's JSON log lines in a readable form; stops everything on Ctrl-C.
With ``--bot module:bot`` conversation answers by that bot, imported from the current
directory, and is restarted whenever one of the bot's files is saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

from hiker.core.broker import connect as connect_broker
from hiker.core.observability import redact
from hiker.core.redis_store import connect_redis
from hiker.core.secret_policy import DEV_PLACEHOLDERS
from hiker.core.settings import CommonSettings, ConfigError, load_settings
from hiker.tools.botwatch import BotSource, changes, locate, next_save

# Placeholders so a fresh clone runs at once. The services accept them only while they listen
# on loopback (the default): real deployments set their own (docs/security.md).
DEV_DEFAULTS: Mapping[str, str] = DEV_PLACEHOLDERS
COLOURS = {
    "ingress": 36,
    "conversation": 35,
    "sender": 33,
    "api": 34,
    "graph-mock": 32,
    "aimock": 92,
}
START_HELP = """\
How to start them:
  on this machine:   rabbitmq-server -detached
                     redis-server --daemonize yes
  with Docker:       docker compose -f deploy/compose/compose.yaml up -d rabbitmq redis
Or point HIKER_AMQP_URL / HIKER_REDIS_URL at running ones."""


async def check_dependencies(settings: CommonSettings) -> list[str]:
    """A sentence per unreachable dependency; empty when both answer."""
    problems = []
    # aio-pika logs a failed connect itself; the sentence below says it better.
    for name in ("aio_pika", "aiormq"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    amqp_url = settings.amqp_url.get_secret_value()
    try:
        connection = await asyncio.wait_for(connect_broker(amqp_url), timeout=5)
        await connection.close()
    except Exception as exc:
        problems.append(f"RabbitMQ is not reachable at {redact(amqp_url)} ({type(exc).__name__})")
    target = settings.redis_target()
    redis = connect_redis(target)
    try:
        await asyncio.wait_for(redis.ping(), timeout=5)
    except Exception as exc:
        problems.append(f"Redis is not reachable at {target.shown()} ({type(exc).__name__})")
    finally:
        await redis.aclose()
    return problems


def render(service: str, line: str) -> str:
    """A JSON log line as ``service | LEVEL event key=value``; other lines as they are."""
    colour = COLOURS.get(service, 37)
    prefix = f"\033[{colour}m{service:>12}\033[0m |"
    try:
        record = json.loads(line)
    except ValueError:
        return f"{prefix} {line}"
    if not isinstance(record, dict):
        return f"{prefix} {line}"
    skip = {"time", "level", "event", "service", "name", "taskName"}
    extras = " ".join(f"{k}={v}" for k, v in record.items() if k not in skip and v is not None)
    return f"{prefix} {record.get('level', ''):<7} {record.get('event', '')} {extras}".rstrip()


async def _pump(service: str, stream: asyncio.StreamReader) -> None:
    async for raw in stream:
        print(render(service, raw.decode(errors="replace").rstrip()), flush=True)


# The example rules file of a checkout (menu with buttons, a list, media): what `make run`
# replies by. An installed package has none and keeps the built-in rules.
SHIPPED_RULES = Path(__file__).resolve().parents[3] / "deploy" / "compose" / "rules.yaml"


# The order children start in; with HIKER_METRICS_PORT set, each takes the next port from it.
ORDER = ("graph-mock", "ingress", "conversation", "sender", "api", "aimock")
# What ``hiker aimock`` calls its models (any name is answered).
AIMOCK_MODEL = "hiker-mock"
AIMOCK_TRANSCRIBE_MODEL = "hiker-mock-transcribe"


def child_env(env: Mapping[str, str], service: str) -> dict[str, str]:
    """The environment of one child: each service keeps its own default metrics port, unless
    HIKER_METRICS_PORT gives the first of a block (several stacks on one machine, tests)."""
    result = dict(env)
    base = result.pop("HIKER_METRICS_PORT", None)
    if base:
        result["HIKER_METRICS_PORT"] = str(int(base) + ORDER.index(service))
    return result


async def spawn(service: str, env: Mapping[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hiker", service,
        env=child_env(env, service),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip


def use_bot(env: dict[str, str], spec: str, cwd: Path) -> BotSource:
    """Answer by ``spec``, imported from ``cwd`` first: for conversation, and to watch."""
    if env.get("HIKER_RESPONDER"):
        raise ConfigError("--bot and HIKER_RESPONDER are both set: unset HIKER_RESPONDER")
    search_path = [str(cwd), *env.get("PYTHONPATH", "").split(os.pathsep)]
    source = locate(spec, [entry for entry in search_path if entry] + sys.path[1:])
    env["HIKER_BOT"] = spec
    env["PYTHONPATH"] = os.pathsep.join(entry for entry in search_path if entry)
    shown = os.path.relpath(source.module_file, cwd)
    folder = os.path.relpath(source.folder, cwd) + ("/**" if source.recursive else "/*")
    print(
        f"dev: answering by {spec} ({shown}); conversation restarts when a file of {folder} "
        "is saved",
        flush=True,
    )
    return source


def use_aimock(env: dict[str, str]) -> bool:
    """Point the AI responder at ``hiker aimock`` unless a model API is configured: a newcomer
    sees the AI path with no account. True when the stand-in is to be started."""
    if env.get("HIKER_AI_BASE_URL"):
        return False
    port = env.get("HIKER_AIMOCK_PORT") or "8091"
    env["HIKER_AI_BASE_URL"] = f"http://127.0.0.1:{port}/v1"
    if not env.get("HIKER_AI_MODEL"):
        env["HIKER_AI_MODEL"] = AIMOCK_MODEL
    if not env.get("HIKER_AI_TRANSCRIBE_MODEL"):
        env["HIKER_AI_TRANSCRIBE_MODEL"] = AIMOCK_TRANSCRIBE_MODEL
    return True


async def run_all(bot: str | None = None) -> int:
    env = dict(os.environ)
    for name, value in DEV_DEFAULTS.items():
        if not env.get(name):
            env[name] = value
            print(f"dev: {name} not set; using a local development placeholder", flush=True)
    settings = load_settings(CommonSettings, env)
    source = use_bot(env, bot, Path.cwd()) if bot else None
    problems = await check_dependencies(settings)
    if problems:
        print("\n".join(problems), file=sys.stderr)
        print(START_HELP, file=sys.stderr)
        return 1
    # The api records into SQLite under ./.hiker/ unless HIKER_DATABASE_URL says otherwise.
    services = ["ingress", "conversation", "sender", "api"]
    # A bot names its own rules file (Bot(rules=...)); HIKER_RULES_FILE would override it.
    if source is None and not env.get("HIKER_RULES_FILE") and SHIPPED_RULES.is_file():
        env["HIKER_RULES_FILE"] = str(SHIPPED_RULES)
        print(f"dev: no HIKER_RULES_FILE; replying by {SHIPPED_RULES} (try 'menu')", flush=True)
    if not env.get("HIKER_GRAPH_BASE_URL"):
        mock_url = f"http://127.0.0.1:{env.get('HIKER_GRAPH_MOCK_PORT', '8090')}"
        env["HIKER_GRAPH_BASE_URL"] = mock_url
        services.insert(0, "graph-mock")
        print(f"dev: no HIKER_GRAPH_BASE_URL; sending to the Graph mock at {mock_url}")
    asked = ""
    if use_aimock(env):
        services.insert(0, "aimock")
        mock = env["HIKER_AI_BASE_URL"].removesuffix("/v1")
        asked = f"dev: asked of the model: curl {mock}/_mock/requests\n"
        print(
            f"dev: no HIKER_AI_BASE_URL; the AI responder asks the stand-in at "
            f"{env['HIKER_AI_BASE_URL']} (model {env['HIKER_AI_MODEL']})",
            flush=True,
        )
    children = {service: await spawn(service, env) for service in services}
    pumps = [asyncio.create_task(_pump(name, c.stdout)) for name, c in children.items() if c.stdout]
    port = env.get("HIKER_HTTP_PORT", "8080")
    # A token of one's own is a secret: named, never printed.
    placeholder = env["HIKER_API_TOKEN"] == DEV_DEFAULTS["HIKER_API_TOKEN"]
    shown_token = DEV_DEFAULTS["HIKER_API_TOKEN"] if placeholder else "$HIKER_API_TOKEN"
    print(
        f"dev: webhook at http://127.0.0.1:{port}/webhook — try, in another terminal:\n"
        f"     .venv/bin/hiker simulate --from 15550001111 --text hello\n"
        f"     .venv/bin/hiker simulate --text 'what can you do?'   (no rule: the AI answers)\n"
        f"dev: sent messages: curl {env['HIKER_GRAPH_BASE_URL']}/_mock/messages\n"
        f"{asked}"
        f"dev: history: curl -H 'Authorization: Bearer {shown_token}' "
        f"http://127.0.0.1:{env.get('HIKER_API_PORT', '8081')}/v1/conversations   (Ctrl-C stops)",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    exit_code = await supervise(children, env, pumps, stop, source)
    for child in children.values():
        if child.returncode is None:
            child.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.gather(*(c.wait() for c in children.values())), 20)
    except TimeoutError:
        for child in children.values():
            with contextlib.suppress(ProcessLookupError):
                child.kill()
    await asyncio.gather(*pumps, return_exceptions=True)
    return exit_code


async def supervise(
    children: dict[str, asyncio.subprocess.Process],
    env: Mapping[str, str],
    pumps: list[asyncio.Task[None]],
    stop: asyncio.Event,
    source: BotSource | None,
) -> int:
    """Wait for Ctrl-C or a child's exit (1: the rest are stopped); with a bot, restart
    conversation on each save, and keep the rest running when the bot's code fails to start."""
    exits = {asyncio.create_task(c.wait()): name for name, c in children.items()}
    stopper = asyncio.create_task(stop.wait())
    saves = changes(source) if source else None
    saved = asyncio.create_task(next_save(saves)) if saves else None
    try:
        while True:
            waiting = [*exits, stopper, *([saved] if saved else [])]
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if stopper in done:
                return 0
            if saved is not None and saved in done and saves is not None:
                names = ", ".join(str(path.name) for path in saved.result())
                print(f"dev: {names} changed; restarting conversation", flush=True)
                for old in [t for t, name in exits.items() if name == "conversation"]:
                    old.cancel()
                    del exits[old]
                await _stop_child(children["conversation"])
                children["conversation"] = await spawn("conversation", env)
                if (stdout := children["conversation"].stdout) is not None:
                    pumps.append(asyncio.create_task(_pump("conversation", stdout)))
                exits[asyncio.create_task(children["conversation"].wait())] = "conversation"
                # The old one has exited: what comes in from now on is answered by the new code.
                print("dev: conversation restarted", flush=True)
                saved = asyncio.create_task(next_save(saves))
            for task in [t for t in exits if t in done]:
                name = exits.pop(task)
                if source is not None and name == "conversation":
                    print(
                        f"dev: conversation exited with {task.result()} (see above); "
                        "save the bot to start it again",
                        flush=True,
                    )
                    continue
                print(f"dev: {name} exited with {task.result()}; stopping the rest", flush=True)
                return 1
    finally:
        stopper.cancel()
        for task in exits:
            task.cancel()
        if saved is not None:
            saved.cancel()
            # The generator is closed only once the poll it was in has seen the cancellation.
            with contextlib.suppress(asyncio.CancelledError):
                await saved
        if saves is not None:
            await saves.aclose()


async def _stop_child(child: asyncio.subprocess.Process) -> None:
    if child.returncode is not None:
        return
    child.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(child.wait(), 20)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        await child.wait()
