"""Api composition root: ``create_app(settings)`` wires the records consumer, the database and
the HTTP routes."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from hiker.api.consumers import records_routes
from hiker.api.db import schema
from hiker.api.db.engine import create_engine
from hiker.api.db.repository import RecordStore
from hiker.api.metrics import ApiMetrics
from hiker.api.recording import RecordHandler
from hiker.api.routes import (
    ACCEPTOR,
    MAX_BODY_BYTES,
    METRICS,
    SCHEMA_READY,
    STORE,
    TOKEN,
    add_api_routes,
    authenticate,
    observe,
)
from hiker.api.sending import SendAcceptor
from hiker.core import topology
from hiker.core.broker import Broker, keep_trying
from hiker.core.contracts import SendMessage
from hiker.core.dependencies import DependencyGate, DependencyMetrics
from hiker.core.errors import DATABASE, Unavailable, classify
from hiker.core.observability import add_ops_routes, new_registry
from hiker.core.publisher import Bundler, Destination
from hiker.core.settings import ApiSettings

log = logging.getLogger(__name__)

OPS_APP = web.AppKey("ops_app", web.Application)
_SEND = Destination(topology.COMMANDS_EXCHANGE, topology.RK_SEND, SendMessage.type_name())
# Between attempts at the schema while the database is away at start.
_UPGRADE_RETRY_MAX_SECONDS = 10.0


def create_app(
    settings: ApiSettings,
    *,
    broker: Broker | None = None,
    engine: AsyncEngine | None = None,
    registry: CollectorRegistry | None = None,
) -> web.Application:
    """The HTTP api; its operations app (metrics, health) is at ``app[OPS_APP]``.

    Starting it upgrades the schema (waiting for the database if it is away), then connects
    to RabbitMQ and starts recording. Until both are done ``/readyz`` says so and requests
    that need what is missing are answered 503.
    """
    registry = registry or new_registry()
    broker = broker or Broker.of_service(settings, "hiker-api")
    engine = engine or create_engine(
        settings.async_database_url(), timeout_seconds=settings.database_timeout_seconds
    )
    store = RecordStore(engine)
    metrics = ApiMetrics(registry)
    dependency_metrics = DependencyMetrics(registry)
    dependency_metrics.up.labels(DATABASE).set(1)
    gate = DependencyGate(dependency_metrics)
    bundler = Bundler(broker.publish, linger_seconds=settings.publish_linger_ms / 1000)

    async def publish(command: SendMessage) -> None:
        await bundler.publish(
            _SEND,
            command,
            message_id=command.idempotency_key,
            correlation_id=command.correlation_id,
        )

    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[observe, authenticate])
    app[STORE] = store
    app[ACCEPTOR] = SendAcceptor(store, publish)
    app[METRICS] = metrics
    app[TOKEN] = settings.api_token.get_secret_value().encode()
    add_api_routes(app)
    schema_ready = app[SCHEMA_READY] = asyncio.Event()

    async def database_ready() -> bool:
        if not schema_ready.is_set():
            return False
        # Within a probe's patience: a database that takes longer is as good as away.
        await asyncio.wait_for(store.ping(), min(settings.database_timeout_seconds, 1.5))
        return True

    ops = web.Application()
    add_ops_routes(
        ops,
        registry,
        {"rabbitmq": broker.is_ready, "database": database_ready, "dependencies": gate.is_ready},
    )
    app[OPS_APP] = ops
    handler = RecordHandler(store, metrics)

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        async def start() -> None:
            await _upgrade_until_done(engine)
            schema_ready.set()

            async def connect() -> None:
                await broker.connect(topology.API_TOPOLOGY)
                await broker.consume(
                    topology.API_RECORDS,
                    records_routes(handler),
                    prefetch=settings.prefetch,
                    gate=gate,
                )
                broker.mark_serving()

            await keep_trying(connect, "RabbitMQ")

        starting = asyncio.create_task(start())
        yield
        starting.cancel()
        await broker.stop_consuming()
        await bundler.aclose()
        await broker.close()
        await engine.dispose()

    app.cleanup_ctx.append(lifecycle)
    return app


async def _upgrade_until_done(engine: AsyncEngine) -> None:
    """Upgrade the schema, retrying while the database cannot be reached or fails the upgrade
    (another replica's lock is waited for, not retried)."""
    delay = 0.5
    while True:
        try:
            await schema.upgrade(engine)
        except Exception as exc:
            away = isinstance(classify(exc), Unavailable) or isinstance(exc, OSError | TimeoutError)
            # A database away needs no traceback; a migration failing on a reachable one does.
            log.warning(
                "database schema upgrade failed (%s); retrying in %.1fs",
                type(exc).__name__,
                delay,
                exc_info=None if away else exc,
            )
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, _UPGRADE_RETRY_MAX_SECONDS)
        else:
            log.info("database schema at head", extra={"revision": schema.head_revision()})
            return
