"""Sender composition root: ``create_app(settings)`` wires the outbox consumer to Graph."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

from hiker.core import topology
from hiker.core.broker import Broker, keep_trying
from hiker.core.claims import ClaimStore
from hiker.core.dependencies import DependencyGate, DependencyMetrics
from hiker.core.observability import add_ops_routes, new_registry
from hiker.core.publisher import Bundler
from hiker.core.redis_store import Keys, RedisClient, connect_redis, ping
from hiker.core.settings import SenderSettings
from hiker.sender.consumers import outbox_routes
from hiker.sender.graph import GraphClient
from hiker.sender.handlers import SendHandler
from hiker.sender.metrics import SenderMetrics
from hiker.sender.outbox import SenderOutbox
from hiker.sender.pacing import Pacer

# Claims on a send last longer than one Graph call may take (timeout plus pacing headroom).
_CLAIM_HEADROOM_SECONDS = 5.0
# Nobody waits on an outcome but the ack of its command: it waits for company this long.
OUTCOMES_LINGER_SECONDS = 0.02
# Graph calls under way at once per process (and HTTP connections to Graph).
GRAPH_CONNECTIONS = 256
# How long "already sent" is remembered: longer than any redelivery or retry path.
_SENT_TTL_SECONDS = 7 * 24 * 3600


def create_app(
    settings: SenderSettings,
    *,
    broker: Broker | None = None,
    redis: RedisClient | None = None,
    registry: CollectorRegistry | None = None,
) -> web.Application:
    """The operations app (metrics, health); starting it connects and starts sending."""
    registry = registry or new_registry()
    broker = broker or Broker.of_service(settings, "hiker-sender")
    redis = redis or connect_redis(settings.redis_target())
    keys = Keys(settings.redis_prefix, adopt_legacy=settings.adopts_legacy_keys)
    metrics = SenderMetrics(registry)
    gate = DependencyGate(DependencyMetrics(registry))
    app = web.Application()

    outcomes = Bundler(broker.publish, linger_seconds=OUTCOMES_LINGER_SECONDS)
    outbox = SenderOutbox(broker, outcomes)

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
                tokens=settings.tokens(),
            ),
            pacer=Pacer(
                keys,
                settings.send_rate_per_second,
                user_interval_seconds=settings.user_send_interval_seconds,
                user_burst=settings.user_send_burst,
            ),
            claims=ClaimStore(
                redis,
                lease_seconds=settings.graph_timeout_seconds + _CLAIM_HEADROOM_SECONDS,
                done_ttl_seconds=_SENT_TTL_SECONDS,
                legacy=keys.legacy,
            ),
            keys=keys,
            schedule_retry=outbox.retry,
            park=outbox.park,
            outcomes=outbox,
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
        await broker.stop_consuming()
        await outcomes.aclose()
        await broker.close()
        await session.close()
        await redis.aclose()

    app.cleanup_ctx.append(lifecycle)
    return app
