"""``hiker doctor``: check a setup and print what is fine, what is not, and how to fix each.

Checks, in this order:
- configuration: each service's ``HIKER_*`` variables, validated as the service itself would;
- the rules file (``HIKER_RULES_FILE``), parsed as conversation would parse it;
- RabbitMQ: login and vhost, every exchange and queue of ``hiker.core.topology`` (the idle-timer
  wait queue of ``HIKER_IDLE_TIMEOUT_SECONDS`` and of every per-number timeout in the rules file
  included) declared with the expected arguments, and the permissions the services need
  (configure, write);
- Redis: reachable and writable (a prefixed key set with a short expiry, then deleted);
- Graph API: the access token accepted and the phone number id known (a read-only ``GET``), and
  the token's expiry where Graph tells it;
- ingress: the webhook URL answers Meta's verification handshake.

Statuses: ``OK``; ``WARN`` for what is not wrong by itself but worth knowing (a queue the
services have not declared yet, a check that could not run for lack of input); ``FAIL`` for what
stops the bot. The exit code is 0 unless a check failed (``--strict``: or warned).

Nothing is created: queues and exchanges are first declared passively (which only looks), and
only those that exist are re-declared with the expected arguments, which RabbitMQ treats as a
no-op when they match and refuses (PRECONDITION_FAILED) when they do not. The write-permission
probe publishes an empty message with a routing key no binding matches, which the broker drops.
No secret is printed: URLs are shown without passwords and every finding is scrubbed of the
secret values found in the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import aio_pika
import aiohttp
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection
from pydantic_settings import BaseSettings
from redis import exceptions as redis_exceptions
from redis.asyncio import Redis

from hiker.conversation.rulesfile import default_rulebook, load_rules_file
from hiker.core import topology
from hiker.core.broker import broker_version
from hiker.core.observability import redact
from hiker.core.settings import (
    CommonSettings,
    ConfigError,
    ConversationSettings,
    IngressSettings,
    SenderSettings,
    load_settings,
)

DEFAULT_TIMEOUT_SECONDS: Final = 3.0
# A token that expires sooner than this is worth a warning: renewing takes a person.
EXPIRY_WARNING_SECONDS: Final = 7 * 24 * 3600
# Routed nowhere on every Hiker exchange (no binding matches it), so the broker drops the probe.
WRITE_PROBE_ROUTING_KEY: Final = "hiker.doctor.write-probe"
_SECRET_VARIABLES: Final = ("HIKER_VERIFY_TOKEN", "HIKER_APP_SECRET", "HIKER_ACCESS_TOKEN")

SERVICE_SETTINGS: Final[Mapping[str, type[BaseSettings]]] = {
    "ingress": IngressSettings,
    "conversation": ConversationSettings,
    "sender": SenderSettings,
}

# Every queue with a fixed name; the wait queue depends on the configured idle timeout.
FIXED_QUEUES: Final = (
    topology.CONVERSATION_INBOUND,
    topology.CONVERSATION_TIMERS,
    topology.SENDER_OUTBOX,
    topology.SENDER_PARKED,
    topology.INSPECT,
    topology.POISON,
)


class Status(StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Finding:
    """One row of the report: what was checked, how it went, and what to do about it."""

    check: str
    status: Status
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class DoctorOptions:
    ingress_url: str
    phone_number_id: str | None = None
    timeout: float = DEFAULT_TIMEOUT_SECONDS


async def diagnose(environ: Mapping[str, str], options: DoctorOptions) -> list[Finding]:
    """Run every check against the setup ``environ`` describes; one finding per row, in order.

    Network checks run concurrently, each bounded by ``options.timeout``.
    """
    findings: list[Finding] = []
    loaded: dict[str, BaseSettings] = {}
    for service, cls in SERVICE_SETTINGS.items():
        try:
            loaded[service] = load_settings(cls, environ)
        except ConfigError as exc:
            findings.append(
                Finding(
                    f"config: {service}",
                    Status.FAIL,
                    str(exc).removeprefix("configuration error: "),
                    "set the named variables in the service's environment "
                    "(README, Configuration); never commit secrets",
                )
            )
        else:
            findings.append(Finding(f"config: {service}", Status.OK, "all variables valid"))

    rules_finding, wait_delays_ms = _rules_findings(loaded.get("conversation"))
    if rules_finding is not None:
        findings.append(rules_finding)
    groups = await asyncio.gather(
        _broker_findings(environ, wait_delays_ms, options.timeout),
        _redis_findings(environ, options.timeout),
        _http_findings(environ, loaded, options),
    )
    for group in groups:
        findings.extend(group)
    return _scrub(findings, _secret_values(environ))


def _rules_findings(conversation: BaseSettings | None) -> tuple[Finding | None, list[int] | None]:
    """The rules file's row, and the wait-queue delays conversation will use (None: unknown)."""
    if not isinstance(conversation, ConversationSettings):
        return None, None
    # Without a (valid) file, conversation runs on the environment's follow-up alone.
    book = default_rulebook(conversation.followup_text, conversation.idle_timeout_seconds)
    finding = None
    path = conversation.rules_file
    if path is not None:
        try:
            book = load_rules_file(path, book)
        except ConfigError as exc:
            finding = Finding(
                "rules file",
                Status.FAIL,
                str(exc),
                "fix the named line; conversation refuses to start with this file (a running "
                "one keeps its last good rules)",
            )
        else:
            finding = Finding(
                "rules file",
                Status.OK,
                f"{path}: {len(book.rules)} rules, {len(book.numbers)} phone numbers with their "
                "own follow-up",
            )
    policies = [book.default, *book.numbers.values()]
    return finding, sorted({topology.delay_ms(policy.idle_timeout_seconds) for policy in policies})


async def _broker_findings(
    environ: Mapping[str, str], wait_delays_ms: list[int] | None, timeout_seconds: float
) -> list[Finding]:
    common = _common_settings(environ)
    if common is None:
        return [_not_checked("rabbitmq", "HIKER_AMQP_URL")]
    findings = await check_rabbitmq(
        common.amqp_url.get_secret_value(), wait_delays_ms or [], timeout_seconds
    )
    if wait_delays_ms is None:
        findings.append(_not_checked("queue: idle-timer wait queue", "HIKER_IDLE_TIMEOUT_SECONDS"))
    return findings


async def _redis_findings(environ: Mapping[str, str], timeout_seconds: float) -> list[Finding]:
    common = _common_settings(environ)
    if common is None:
        return [_not_checked("redis", "HIKER_REDIS_URL / HIKER_REDIS_PREFIX")]
    return [
        await check_redis(common.redis_url.get_secret_value(), common.redis_prefix, timeout_seconds)
    ]


async def _http_findings(
    environ: Mapping[str, str], loaded: Mapping[str, BaseSettings], options: DoctorOptions
) -> list[Finding]:
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=options.timeout)
    ) as session:
        sender = loaded.get("sender")
        if isinstance(sender, SenderSettings):
            graph = await check_graph(session, sender, options.phone_number_id)
        else:
            graph = [_not_checked("graph: access token", "the sender's configuration")]
        # The handshake needs the verify token only; the rest of ingress's configuration has
        # its own row, and need not be right for this check to say something useful.
        verify_token = environ.get("HIKER_VERIFY_TOKEN")
        if verify_token:
            ingress = await check_ingress_handshake(session, options.ingress_url, verify_token)
        else:
            ingress = _not_checked("ingress handshake", "HIKER_VERIFY_TOKEN")
    return [*graph, ingress]


def _common_settings(environ: Mapping[str, str]) -> CommonSettings | None:
    try:
        return load_settings(CommonSettings, environ)
    except ConfigError:
        return None


def _not_checked(check: str, needs: str) -> Finding:
    return Finding(check, Status.WARN, f"not checked: {needs} is missing or invalid", "see above")


# --- RabbitMQ ------------------------------------------------------------------------------


async def check_rabbitmq(
    url: str, wait_delays_ms: Sequence[int], timeout_seconds: float
) -> list[Finding]:
    """Login and vhost, then every exchange and queue (and the wait queues of those delays)."""
    shown = redact(url)
    vhost = unquote(urlsplit(url).path[1:]) or "/"
    try:
        connection = await asyncio.wait_for(
            aio_pika.connect(url, timeout=timeout_seconds), timeout_seconds
        )
    except Exception as exc:
        return [_connection_failure(exc, shown, vhost, timeout_seconds)]
    try:
        findings = [Finding("rabbitmq", Status.OK, f"connected to {shown}")]
        for exchange in topology.EXCHANGES:
            findings.append(await _check_exchange(connection, exchange, vhost))
        queues = list(FIXED_QUEUES)
        queues.extend(topology.timer_wait_queue(delay) for delay in wait_delays_ms)
        version = broker_version(connection)
        for queue in queues:
            # Compared with what the services declare on this broker version.
            expected = topology.for_server(queue, version)
            findings.append(await _check_queue(connection, expected, vhost))
        return findings
    finally:
        with contextlib.suppress(Exception):
            await connection.close()


def _connection_failure(
    exc: BaseException, shown: str, vhost: str, timeout_seconds: float
) -> Finding:
    if isinstance(exc, aiormq.exceptions.ProbableAuthenticationError):
        return Finding(
            "rabbitmq",
            Status.FAIL,
            f"login refused at {shown}",
            "check the user and password in HIKER_AMQP_URL (rabbitmqctl list_users)",
        )
    if isinstance(exc, aiormq.exceptions.InvalidFrameError | aiormq.exceptions.ConnectionClosed):
        # RabbitMQ answers connection.open with a close when the vhost is unknown or forbidden.
        return Finding(
            "rabbitmq",
            Status.FAIL,
            f"the broker refused vhost {vhost!r}: it does not exist or the user may not use it",
            f"rabbitmqctl add_vhost {vhost} && rabbitmqctl set_permissions -p {vhost} "
            "USER '.*' '.*' '.*'",
        )
    if isinstance(exc, TimeoutError):
        reason = f"no answer within {timeout_seconds:g}s"
    else:
        reason = f"{type(exc).__name__}: {exc}"
    return Finding(
        "rabbitmq",
        Status.FAIL,
        f"not reachable at {shown} ({reason})",
        "start RabbitMQ, or fix host and port in HIKER_AMQP_URL",
    )


@contextlib.asynccontextmanager
async def _fresh_channel(
    connection: AbstractConnection, *, confirms: bool = False
) -> AsyncIterator[AbstractChannel]:
    """A channel for one check: a refused declare closes its channel, never the next check's."""
    channel = await connection.channel(publisher_confirms=confirms)
    try:
        yield channel
    finally:
        if not channel.is_closed:
            with contextlib.suppress(Exception):
                await channel.close()


def _broker_reason(exc: aiormq.exceptions.AMQPError) -> str:
    text = str(exc.args[0]) if exc.args else str(exc)
    return text.split(" - ", 1)[-1]


async def _check_exchange(
    connection: AbstractConnection, spec: topology.ExchangeSpec, vhost: str
) -> Finding:
    check = f"exchange: {spec.name}"
    async with _fresh_channel(connection) as channel:
        try:
            await channel.declare_exchange(spec.name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return _not_declared_yet(check)
    async with _fresh_channel(connection, confirms=True) as channel:
        try:
            exchange = await channel.declare_exchange(spec.name, type=spec.type, durable=True)
        except aiormq.exceptions.ChannelPreconditionFailed as exc:
            return Finding(
                check,
                Status.FAIL,
                f"exists with other properties: {_broker_reason(exc)}",
                f"it must be a durable {spec.type} exchange: rabbitmqctl delete_exchange "
                f"{spec.name} -p {vhost}, then restart the services (they declare it)",
            )
        except aiormq.exceptions.ChannelAccessRefused as exc:
            return _refused(check, "configure", exc, vhost)
        try:
            await exchange.publish(aio_pika.Message(b""), WRITE_PROBE_ROUTING_KEY, mandatory=False)
        except aiormq.exceptions.ChannelAccessRefused as exc:
            return _refused(check, "write", exc, vhost)
    return Finding(check, Status.OK, f"durable {spec.type}; configure and write permitted")


async def _check_queue(
    connection: AbstractConnection, spec: topology.QueueSpec, vhost: str
) -> Finding:
    check = f"queue: {spec.name}"
    async with _fresh_channel(connection) as channel:
        try:
            existing = await channel.declare_queue(spec.name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return _not_declared_yet(check)
        state = existing.declaration_result
    async with _fresh_channel(connection) as channel:
        try:
            await channel.declare_queue(spec.name, durable=True, arguments=dict(spec.arguments))
        except aiormq.exceptions.ChannelPreconditionFailed as exc:
            return Finding(
                check,
                Status.FAIL,
                f"exists with different arguments: {_broker_reason(exc)}",
                _redeclare_fix(spec.name, vhost),
            )
        except aiormq.exceptions.ChannelAccessRefused as exc:
            return _refused(check, "configure", exc, vhost)
    return Finding(
        check,
        Status.OK,
        f"arguments as expected; {state.message_count or 0} ready, "
        f"{state.consumer_count or 0} consumers",
    )


def _not_declared_yet(check: str) -> Finding:
    # Normal before the first start, and for a wait queue right after the timeout changed; the
    # services declare what they use on start, so this alone stops nothing.
    return Finding(
        check,
        Status.WARN,
        "not declared yet",
        "the services declare it when they start; if they run already, see their logs",
    )


def _redeclare_fix(name: str, vhost: str) -> str:
    lost = (
        "its pending idle timers"
        if name.startswith(topology.TIMER_WAIT_QUEUE_PREFIX)
        else "its messages"
    )
    return (
        f"move {lost} elsewhere if they matter (a shovel to a new queue), then "
        f"`rabbitmqctl delete_queue {name} -p {vhost}` and restart the services, which "
        "re-declare it with the expected arguments"
    )


def _refused(check: str, permission: str, exc: aiormq.exceptions.AMQPError, vhost: str) -> Finding:
    return Finding(
        check,
        Status.FAIL,
        f"no {permission} permission: {_broker_reason(exc)}",
        f"rabbitmqctl set_permissions -p {vhost} USER '.*' '.*' '.*' (or patterns that "
        "cover every hiker.* name)",
    )


# --- Redis ---------------------------------------------------------------------------------


async def check_redis(url: str, prefix: str, timeout_seconds: float) -> Finding:
    """Set a prefixed key with a short expiry and delete it: reachable, logged in, writable."""
    shown = redact(url)
    try:
        client = Redis.from_url(
            url, socket_connect_timeout=timeout_seconds, socket_timeout=timeout_seconds
        )
    except ValueError as exc:
        return Finding("redis", Status.FAIL, f"unusable URL: {exc}", "fix HIKER_REDIS_URL")
    key = f"{prefix}doctor:{secrets.token_hex(8)}"
    try:
        await asyncio.wait_for(_write_and_delete(client, key), timeout_seconds * 2)
    except redis_exceptions.AuthenticationError:
        return Finding(
            "redis",
            Status.FAIL,
            f"login refused at {shown}",
            "fix the user or password in HIKER_REDIS_URL",
        )
    except (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError, OSError) as exc:
        return Finding(
            "redis",
            Status.FAIL,
            f"not reachable at {shown} ({type(exc).__name__})",
            "start Redis, or fix host and port in HIKER_REDIS_URL",
        )
    except TimeoutError:
        return Finding(
            "redis", Status.FAIL, f"no answer within {timeout_seconds:g}s at {shown}", "check Redis"
        )
    except redis_exceptions.ResponseError as exc:
        # READONLY (a replica), OOM (maxmemory reached), NOPERM (an ACL): Redis names it.
        return Finding(
            "redis",
            Status.FAIL,
            f"not writable at {shown}: {exc}",
            "point HIKER_REDIS_URL at a writable primary whose user may write "
            f"{prefix}* keys, with memory to spare",
        )
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()
    return Finding("redis", Status.OK, f"{shown} writable under prefix {prefix!r}")


async def _write_and_delete(client: Redis, key: str) -> None:
    await client.set(key, b"1", ex=30)
    await client.delete(key)


# --- Graph API -----------------------------------------------------------------------------


async def check_graph(
    session: aiohttp.ClientSession, settings: SenderSettings, phone_number_id: str | None
) -> list[Finding]:
    """The token against Graph, with the phone number id when known (else ``/me``)."""
    base = f"{str(settings.graph_base_url).rstrip('/')}/{settings.graph_api_version}"
    headers = {"Authorization": f"Bearer {settings.access_token.get_secret_value()}"}
    target = phone_number_id or "me"
    try:
        async with session.get(f"{base}/{target}", headers=headers) as response:
            status = response.status
            body = await _json_object(response)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return [
            Finding(
                "graph: access token",
                Status.FAIL,
                f"Graph not reachable at {base} ({type(exc).__name__})",
                "check HIKER_GRAPH_BASE_URL and outbound network access",
            ),
            _phone_row_not_checked(phone_number_id, "Graph not reachable"),
        ]
    error = body.get("error") if isinstance(body.get("error"), dict) else None
    code = error.get("code") if error else None
    message = str(error.get("message", "")) if error else ""
    if status == 401 or code == 190:
        return [
            Finding(
                "graph: access token",
                Status.FAIL,
                f"rejected (HTTP {status}, Graph code {code}: {message})",
                "renew HIKER_ACCESS_TOKEN (a System User token with whatsapp_business_messaging "
                "does not expire) and restart the sender; then `hiker parked replay --reason 190`",
            ),
            _phone_row_not_checked(phone_number_id, "the token was refused"),
        ]
    if phone_number_id is None:
        token = (
            Finding("graph: access token", Status.OK, "accepted by Graph (GET /me)")
            if status == 200
            else _graph_failure("graph: access token", status, code, message)
        )
        return [token, _phone_row_not_checked(None, "")]
    if status == 200:
        expiry = await _token_expiry(session, base, headers, settings)
        name = body.get("verified_name") or "no verified name"
        quality = body.get("quality_rating") or "unknown"
        return [
            expiry,
            Finding(
                "graph: phone number id",
                Status.OK,
                f"{phone_number_id} known: {name}, quality {quality}",
            ),
        ]
    if code == 100:
        return [
            Finding("graph: access token", Status.OK, "accepted by Graph"),
            Finding(
                "graph: phone number id",
                Status.FAIL,
                f"{phone_number_id} unknown to this token (Graph code 100: {message})",
                "use the Phone number ID from WhatsApp Manager > API Setup, and a token whose "
                "app is subscribed to that WhatsApp Business Account",
            ),
        ]
    return [
        _graph_failure("graph: access token", status, code, message),
        _phone_row_not_checked(phone_number_id, f"Graph answered HTTP {status}"),
    ]


def _graph_failure(check: str, status: int, code: object, message: str) -> Finding:
    return Finding(
        check,
        Status.FAIL,
        f"Graph answered HTTP {status} (code {code}: {message or 'no error message'})",
        "look the code up in Meta's Cloud API error reference; 4xx is ours to fix, 5xx Meta's",
    )


def _phone_row_not_checked(phone_number_id: str | None, reason: str) -> Finding:
    if phone_number_id is None:
        return Finding(
            "graph: phone number id",
            Status.WARN,
            "not checked: no phone number id given",
            "pass --phone-number-id or set HIKER_PHONE_NUMBER_ID",
        )
    return Finding("graph: phone number id", Status.WARN, f"not checked: {reason}", "see above")


async def _token_expiry(
    session: aiohttp.ClientSession,
    base: str,
    headers: Mapping[str, str],
    settings: SenderSettings,
) -> Finding:
    """The token row for an accepted token, with its expiry when ``debug_token`` tells it.

    ``debug_token`` may refuse a token that inspects itself (it wants an app token), in which
    case the expiry is simply unknown: the token works now, which is what matters most.
    """
    check = "graph: access token"
    params = {"input_token": settings.access_token.get_secret_value()}
    try:
        async with session.get(f"{base}/debug_token", params=params, headers=headers) as response:
            body = await _json_object(response) if response.status == 200 else {}
    except (aiohttp.ClientError, TimeoutError):
        body = {}
    data = body.get("data")
    expires_at = data.get("expires_at") if isinstance(data, dict) else None
    if not isinstance(expires_at, int):
        return Finding(check, Status.OK, "accepted by Graph; expiry unknown")
    if expires_at == 0:
        return Finding(check, Status.OK, "accepted by Graph; does not expire")
    when = datetime.fromtimestamp(expires_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    if expires_at - time.time() < EXPIRY_WARNING_SECONDS:
        return Finding(
            check,
            Status.WARN,
            f"accepted by Graph; expires {when}",
            "renew HIKER_ACCESS_TOKEN before then (a System User token does not expire)",
        )
    return Finding(check, Status.OK, f"accepted by Graph; expires {when}")


async def _json_object(response: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        body = await response.json(content_type=None)
    except (ValueError, aiohttp.ContentTypeError):
        return {}
    return body if isinstance(body, dict) else {}


# --- ingress -------------------------------------------------------------------------------


async def check_ingress_handshake(
    session: aiohttp.ClientSession, url: str, verify_token: str
) -> Finding:
    """Meta's verification ``GET``: 200 with the challenge echoed means Meta can subscribe."""
    check = "ingress handshake"
    challenge = str(secrets.randbelow(10**10))
    params = {"hub.mode": "subscribe", "hub.verify_token": verify_token, "hub.challenge": challenge}
    try:
        async with session.get(url, params=params) as response:
            status = response.status
            text = await response.text(errors="replace")
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Finding(
            check,
            Status.FAIL,
            f"no answer from {url} ({type(exc).__name__})",
            "start `hiker ingress`, or pass --ingress-url with the webhook's address",
        )
    if status == 200 and text == challenge:
        return Finding(check, Status.OK, f"{url} echoed the challenge")
    if status == 200:
        return Finding(
            check,
            Status.FAIL,
            f"{url} answered 200 without echoing the challenge",
            "point --ingress-url at Hiker's ingress (path /webhook), not at another service",
        )
    if status == 403:
        return Finding(
            check,
            Status.FAIL,
            f"{url} refused the verify token (403)",
            "HIKER_VERIFY_TOKEN here, the one ingress runs with, and the one in Meta's "
            "dashboard must be the same",
        )
    return Finding(
        check,
        Status.FAIL,
        f"{url} answered HTTP {status}",
        "point --ingress-url at ingress's webhook (path /webhook)",
    )


# --- secrets and output --------------------------------------------------------------------


def _secret_values(environ: Mapping[str, str]) -> list[str]:
    values = [environ[name] for name in _SECRET_VARIABLES if environ.get(name)]
    for name in ("HIKER_AMQP_URL", "HIKER_REDIS_URL"):
        with contextlib.suppress(ValueError):
            password = urlsplit(environ.get(name, "")).password
            if password:
                values.append(password)
    # Very short values would scrub ordinary words; they are no secret worth the name anyway.
    return [value for value in values if len(value) >= 4]


def _scrub(findings: Iterable[Finding], secret_values: Sequence[str]) -> list[Finding]:
    """A last guard: no finding carries a secret's value, whatever an error message quoted."""

    def clean(text: str) -> str:
        for value in secret_values:
            text = text.replace(value, "***")
        return text

    return [Finding(f.check, f.status, clean(f.detail), clean(f.fix)) for f in findings]


def exit_code(findings: Sequence[Finding], *, strict: bool = False) -> int:
    """0 when nothing failed (with ``strict``, nothing warned either), else 1."""
    bad = {Status.FAIL, Status.WARN} if strict else {Status.FAIL}
    return 1 if any(f.status in bad for f in findings) else 0


def render_table(findings: Sequence[Finding], width: int | None = None) -> str:
    """The findings as a table: check, status, and the detail with its fix under it."""
    width = width or max(100, shutil.get_terminal_size().columns)
    check_width = max(len("CHECK"), *(len(f.check) for f in findings))
    status_width = len("STATUS")
    detail_width = max(30, width - check_width - status_width - 4)
    indent = " " * (check_width + status_width + 4)
    lines = [f"{'CHECK':<{check_width}}  {'STATUS':<{status_width}}  DETAIL / FIX"]
    for f in findings:
        text = textwrap.wrap(f.detail, detail_width, break_on_hyphens=False) or [""]
        if f.status is not Status.OK and f.fix:
            text += textwrap.wrap(
                "fix: " + f.fix, detail_width, subsequent_indent="     ", break_on_hyphens=False
            )
        lines.append(f"{f.check:<{check_width}}  {f.status.value:<{status_width}}  {text[0]}")
        lines.extend(indent + more for more in text[1:])
    counts = {status: sum(f.status is status for f in findings) for status in Status}
    lines.append(
        f"\n{counts[Status.FAIL]} failed, {counts[Status.WARN]} "
        f"warning{'' if counts[Status.WARN] == 1 else 's'}, {counts[Status.OK]} ok"
    )
    return "\n".join(lines)


def render_json(findings: Sequence[Finding], *, strict: bool = False) -> str:
    return json.dumps(
        {
            "ok": exit_code(findings, strict=strict) == 0,
            "checks": [{**asdict(f), "status": f.status.value} for f in findings],
        },
        indent=2,
    )


def default_ingress_url(environ: Mapping[str, str]) -> str:
    return f"http://127.0.0.1:{environ.get('HIKER_HTTP_PORT') or 8080}/webhook"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ingress-url",
        default=None,
        help="webhook URL to handshake with (default http://127.0.0.1:$HIKER_HTTP_PORT/webhook)",
    )
    parser.add_argument(
        "--phone-number-id",
        default=None,
        help="business phone number id to look up on Graph (default $HIKER_PHONE_NUMBER_ID)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help="seconds each network check may take (default %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON for machines")
    parser.add_argument("--strict", action="store_true", help="exit 1 on warnings too")


def run(args: argparse.Namespace) -> int:
    """``hiker doctor``: print the report; 0 when every check passed, else 1."""
    # Client libraries log connection failures on their own; the report already says it better.
    for noisy in ("aio_pika", "aiormq", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    environ = os.environ
    options = DoctorOptions(
        ingress_url=args.ingress_url or default_ingress_url(environ),
        phone_number_id=args.phone_number_id or environ.get("HIKER_PHONE_NUMBER_ID") or None,
        timeout=args.timeout,
    )
    findings = asyncio.run(diagnose(environ, options))
    if args.json:
        print(render_json(findings, strict=args.strict))
    else:
        print(render_table(findings))
    sys.stdout.flush()
    return exit_code(findings, strict=args.strict)
