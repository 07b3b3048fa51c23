"""RabbitMQ: login and vhost, and every exchange and queue declared as the services declare them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Final
from urllib.parse import unquote, urlsplit

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection

from hiker.core import topology
from hiker.core.addresses import Node, parse_amqp_url
from hiker.core.broker import broker_version, connect
from hiker.core.observability import redact
from hiker.tools.doctor.report import Finding, Status

# Routed nowhere on every Hiker exchange (no binding matches it), so the broker drops the probe.
WRITE_PROBE_ROUTING_KEY: Final = "hiker.doctor.write-probe"

# Every queue with a fixed name; the wait queue depends on the configured idle timeout.
FIXED_QUEUES: Final = (
    topology.CONVERSATION_INBOUND,
    topology.CONVERSATION_TIMERS,
    topology.SENDER_OUTBOX,
    topology.SENDER_PARKED,
    topology.INSPECT,
    topology.POISON,
)


async def check_rabbitmq(
    url: str,
    wait_delays_ms: Sequence[int],
    timeout_seconds: float,
    optional_queues: Sequence[topology.QueueSpec] = (),
    *,
    quorum_group_size: int | None = None,
) -> list[Finding]:
    """Login and vhost, then every exchange and queue (the wait queues of those delays, and
    the queues of the optional services the setup runs), compared with what the services
    declare (``quorum_group_size`` included)."""
    shown = redact(url)
    vhost = unquote(urlsplit(url).path[1:]) or "/"
    nodes = parse_amqp_url(url).nodes
    try:
        connection = await asyncio.wait_for(
            connect(url, connect_timeout=timeout_seconds), timeout_seconds * len(nodes)
        )
    except Exception as exc:
        return [_connection_failure(exc, shown, vhost, timeout_seconds)]
    try:
        findings = [Finding("rabbitmq", Status.OK, f"connected to {shown}")]
        if len(nodes) > 1:
            findings.append(await _check_nodes(nodes, timeout_seconds))
        for exchange in topology.EXCHANGES:
            findings.append(await _check_exchange(connection, exchange, vhost))
        queues = [*FIXED_QUEUES, *optional_queues]
        queues.extend(topology.timer_wait_queue(delay) for delay in wait_delays_ms)
        version = broker_version(connection)
        for queue in queues:
            # Compared with what the services declare on this broker version.
            expected = topology.for_server(queue, version, quorum_group_size=quorum_group_size)
            findings.append(await _check_queue(connection, expected, vhost))
        return findings
    finally:
        with contextlib.suppress(Exception):
            await connection.close()


async def _check_nodes(nodes: Sequence[Node], timeout_seconds: float) -> Finding:
    """Whether each listed node accepts a connection: the services move to the next one when
    theirs goes, which only helps if the others answer."""

    async def accepts(node: Node) -> bool:
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(node.host, node.port), timeout_seconds
            )
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        return True

    answers = await asyncio.gather(*(accepts(node) for node in nodes))
    silent = [str(node) for node, answered in zip(nodes, answers, strict=True) if not answered]
    if not silent:
        return Finding("rabbitmq: nodes", Status.OK, f"all {len(nodes)} listed nodes answer")
    return Finding(
        "rabbitmq: nodes",
        Status.WARN,
        f"{len(silent)} of {len(nodes)} listed nodes do not answer: {', '.join(silent)}",
        "the services run on the others meanwhile; bring the node back, or fix its host and "
        "port in HIKER_AMQP_URL",
    )


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
