"""Sender composition root: ``create_app(settings)`` wires the outbox consumer to Graph."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from hiker.core import topology
from hiker.core.broker import Broker, keep_trying
from hiker.core.claims import ClaimStore
from hiker.core.contracts import SendMessage
from hiker.core.dependencies import DependencyGate, DependencyMetrics
from hiker.core.observability import add_ops_routes, new_registry
from hiker.core.redis_store import Keys, connect_redis, ping
from hiker.core.settings import SenderSettings
from hiker.sender.consumers import outbox_routes
from hiker.sender.graph import GraphClient
from hiker.sender.handlers import Parked, SendHandler
from hiker.sender.metrics import SenderMetrics
from hiker.sender.pacing import Pacer

# Claims on a send last longer than one Graph call may take (timeout plus pacing headroom).
_CLAIM_HEADROOM_SECONDS = 5.0
# Graph calls under way at once per process (and HTTP connections to Graph).
GRAPH_CONNECTIONS = 256
# How long "already sent" is remembered: longer than any redelivery or retry path.
_SENT_TTL_SECONDS = 7 * 24 * 3600


def create_app(
    settings: SenderSettings,
    *,
    broker: Broker | None = None,
    redis: Redis | None = None,
    registry: CollectorRegistry | None = None,
) -> web.Application:
    """The operations app (metrics, health); starting it connects and starts sending."""
    registry = registry or new_registry()
    broker = broker or Broker(settings.amqp_url.get_secret_value(), client_name="hiker-sender")
    redis = redis or connect_redis(settings.redis_url.get_secret_value())
    keys = Keys(settings.redis_prefix)
    metrics = SenderMetrics(registry)
    gate = DependencyGate(DependencyMetrics(registry))
    app = web.Application()

    async def publish_command(
        exchange: str,
        routing_key: str,
        command: SendMessage,
        headers: dict[str, Any],
        expiration_ms: int | None = None,
    ) -> None:
        await broker.publish(
            exchange,
            routing_key,
            command.to_bytes(),
            type_name=command.type_name(),
            message_id=command.idempotency_key,
            correlation_id=command.correlation_id,
            headers={topology.HEADER_CORRELATION_ID: command.correlation_id, **headers},
            expiration_ms=expiration_ms,
        )

    async def schedule_retry(command: SendMessage, attempt: int, delay_ms: int) -> None:
        queue = await broker.declare_queue(topology.sender_retry_queue(delay_ms))
        await publish_command(
            "", queue.name, command, {topology.HEADER_ATTEMPT: attempt}, expiration_ms=delay_ms
        )

    async def park(command: SendMessage, attempt: int, parked: Parked) -> None:
        headers = {
            topology.HEADER_ATTEMPT: attempt,
            topology.HEADER_PARKED_REASON: parked.reason,
            topology.HEADER_GRAPH_STATUS: parked.http_status,
            topology.HEADER_GRAPH_CODE: parked.code,
            topology.HEADER_GRAPH_ERROR: json.dumps(parked.error or {}),
            # A string: AMQP tables carry a Python float as 32 bits, a minute off at today's epoch.
            topology.HEADER_PARKED_AT: f"{time.time():.3f}",
        }
        await publish_command(topology.DEAD_EXCHANGE, topology.RK_PARKED, command, headers)

    add_ops_routes(
        app,
        registry,
        {"rabbitmq": broker.is_ready, "redis": lambda: ping(redis), "dependencies": gate.is_ready},
    )

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        # The HTTP session is made here, inside the running loop, never at import time.
        session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=settings.graph_timeout_seconds),
            connector=aiohttp.TCPConnector(limit=GRAPH_CONNECTIONS),
            # Graph sets no cookies worth keeping; a jar would be consulted on every call.
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        handler = SendHandler(
            graph=GraphClient(
                session,
                base_url=str(settings.graph_base_url),
                api_version=settings.graph_api_version,
                access_token=settings.access_token,
            ),
            pacer=Pacer(keys, settings.send_rate_per_second),
            claims=ClaimStore(
                redis,
                lease_seconds=settings.graph_timeout_seconds + _CLAIM_HEADROOM_SECONDS,
                done_ttl_seconds=_SENT_TTL_SECONDS,
            ),
            keys=keys,
            schedule_retry=schedule_retry,
            park=park,
            metrics=metrics,
            max_attempts=settings.max_attempts,
            # A call reports back within its timeout; the margin covers the event loop's delays.
            call_deadline_seconds=settings.graph_timeout_seconds + 2,
            max_concurrent_calls=GRAPH_CONNECTIONS,
        )

        async def start() -> None:
            await broker.connect(topology.SENDER_TOPOLOGY)
            await broker.consume(
                topology.SENDER_OUTBOX,
                outbox_routes(handler),
                prefetch=settings.prefetch,
                gate=gate,
            )
            broker.mark_serving()

        connecting = asyncio.create_task(keep_trying(start, "RabbitMQ"))
        yield
        connecting.cancel()
        await broker.close()
        await session.close()
        await redis.aclose()

    app.cleanup_ctx.append(lifecycle)
    return app
