"""The api, declared: the records consumer, the database and the HTTP routes.

Starting it upgrades the schema (waiting for the database if it is away), then connects to
RabbitMQ and starts recording. Until both are done ``/readyz`` says so and requests that need
what is missing are answered 503.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Unpack

import aiohttp
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from hiker.api import handoff
from hiker.api.broadcast_routes import SETUP, BroadcastSetup, add_broadcast_routes
from hiker.api.broadcast_tracking import BroadcastTracker
from hiker.api.consumers import records_routes
from hiker.api.db import migrate
from hiker.api.db.broadcasts import BroadcastStore
from hiker.api.db.delivery import DeliveryRecords
from hiker.api.db.engine import create_engine
from hiker.api.db.feeding import Feeder, MessagingLimit
from hiker.api.db.media import MediaRecords
from hiker.api.db.opt_outs import OptOutStore
from hiker.api.db.repository import RecordStore
from hiker.api.media import KEEPER, MediaKeeper
from hiker.api.messaging_limit import GraphMessagingLimit
from hiker.api.metrics import ApiMetrics
from hiker.api.recording import RecordHandler
from hiker.api.routes import (
    ACCEPTOR,
    DELIVERY,
    MAX_BODY_BYTES,
    METRICS,
    SCHEMA_READY,
    STORE,
    TOKENS,
    add_api_routes,
    authenticate,
    observe,
)
from hiker.api.scheduler import BroadcastScheduler, fixed_limit
from hiker.api.sending import SendAcceptor
from hiker.api.templates import TemplateGauge
from hiker.core import kernel, topology
from hiker.core.contracts import OwnerChanged, SendMessage
from hiker.core.errors import DATABASE, Unavailable, classify
from hiker.core.graph_media import graph_media
from hiker.core.kernel import OPS_APP, Consume, Kit, Parts, Plan, Serve, Service
from hiker.core.keys import Keys
from hiker.core.ownership import OwnershipStore, owner_destination
from hiker.core.publisher import Destination
from hiker.core.retrying import Backoff
from hiker.core.settings import ApiSettings

__all__ = ["OPS_APP", "SERVICE", "api", "create_app"]

log = logging.getLogger(__name__)

# Connections of the broadcasts' own pool (per replica): the scheduler's tick, and requests.
BROADCAST_POOL_SIZE = 4

_SEND = Destination(topology.COMMANDS_EXCHANGE, topology.RK_SEND, SendMessage.type_name())


def api(
    engine: AsyncEngine | None = None, clock: Callable[[], float] = time.time
) -> Service[ApiSettings]:
    """The service, on ``engine`` when given (tests), else on ``HIKER_DATABASE_URL``;
    ``clock`` (tests) dates handoffs and drives broadcasts (their start, the daily limit)."""

    def build(kit: Kit[ApiSettings]) -> Plan:
        return _build(kit, engine, clock)

    return Service(
        "api",
        ApiSettings,
        build,
    )


def _build(
    kit: Kit[ApiSettings], given_engine: AsyncEngine | None, clock: Callable[[], float]
) -> Plan:
    settings = kit.settings
    engine = given_engine or create_engine(
        settings.async_database_url(), timeout_seconds=settings.database_timeout_seconds
    )
    store = RecordStore(engine)
    delivery = DeliveryRecords(engine)
    metrics = ApiMetrics(kit.registry)
    template_gauge = TemplateGauge(delivery.all_templates, metrics.templates)
    kit.gate.track(DATABASE)
    bundler = kit.bundler()

    async def publish(command: SendMessage) -> None:
        await bundler.publish(
            _SEND,
            command,
            message_id=command.idempotency_key,
            correlation_id=command.correlation_id,
        )

    async def announce(change: OwnerChanged) -> None:
        await bundler.publish(owner_destination(change.owner), change)

    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[observe, authenticate])
    app[STORE] = store
    app[DELIVERY] = delivery
    app[ACCEPTOR] = SendAcceptor(store, publish)
    app[METRICS] = metrics
    app[TOKENS] = settings.tokens()
    keeper = _media_keeper(kit, engine)
    if keeper is not None:
        app[KEEPER] = keeper
    # Handoffs are written where conversation reads them: the api's only use of Redis (and
    # what puts Redis among its readiness checks).
    app[handoff.OWNERSHIP] = OwnershipStore(
        kit.redis, Keys(settings.redis_prefix), announce=announce
    )
    app[handoff.CLOCK] = clock
    add_api_routes(app)
    schema_ready = app[SCHEMA_READY] = asyncio.Event()
    broadcasts = BroadcastStore(engine)
    opt_outs = OptOutStore(engine)
    # Broadcasts' requests and the scheduler on connections of their own: a flood of outcomes
    # recorded (a big broadcast's) takes every connection of the records' pool, and progress
    # must stay readable meanwhile. SQLite has one writer: one engine.
    side = (
        engine
        if given_engine is not None or engine.dialect.name == "sqlite"
        else create_engine(
            settings.async_database_url(),
            timeout_seconds=settings.database_timeout_seconds,
            pool_size=BROADCAST_POOL_SIZE,
            pool_overflow=0,
        )
    )
    app[SETUP] = BroadcastSetup(
        BroadcastStore(side),
        OptOutStore(side),
        marketing_messages_api=settings.marketing_messages_api,
        max_bytes=settings.broadcast_max_bytes,
        clock=clock,
    )
    add_broadcast_routes(app)

    async def publish_many(commands: Sequence[SendMessage]) -> None:
        # Concurrently: the bundler confirms them together.
        await asyncio.gather(*(publish(command) for command in commands))

    scheduler = BroadcastScheduler(
        Feeder(side),
        publish_many,
        rate_per_second=settings.broadcast_rate(),
        tick_seconds=settings.broadcast_tick_seconds,
        messaging_limit=_messaging_limit(kit),
        ready=schema_ready,
        clock=clock,
    )

    async def database_ready() -> bool:
        if not schema_ready.is_set():
            return False
        # Within a probe's patience: a database that takes longer is as good as away.
        await asyncio.wait_for(store.ping(), min(settings.database_timeout_seconds, 1.5))
        return True

    async def upgrade_schema() -> None:
        await _upgrade_until_done(engine)
        schema_ready.set()

    return Plan(
        topology=topology.API_TOPOLOGY,
        consumes=(
            Consume(
                topology.API_RECORDS,
                records_routes(
                    RecordHandler(
                        store,
                        metrics,
                        delivery=delivery,
                        templates_changed=template_gauge.refresh,
                        keep_media=keeper.keep if keeper is not None else None,
                    ),
                    BroadcastTracker(broadcasts, opt_outs, settings.opt_out_set()),
                ),
                settings.prefetch,
            ),
        ),
        serves=Serve(app, settings.api_host, settings.api_port),
        readiness={"database": database_ready},
        prepare=(upgrade_schema,),
        background=(
            template_gauge.refresh_forever,
            scheduler.run_forever,
            *((keeper.sweep_forever,) if keeper is not None else ()),
        ),
        closing=(engine.dispose,) if side is engine else (engine.dispose, side.dispose),
    )


def _messaging_limit(kit: Kit[ApiSettings]) -> MessagingLimit:
    """HIKER_MESSAGING_LIMIT, or Graph's word on it when that is unset."""
    settings = kit.settings
    if settings.messaging_limit is not None:
        return fixed_limit(settings.messaging_limit)
    seconds = settings.graph_timeout_seconds
    return GraphMessagingLimit(
        lambda: kit.client_session(timeout=aiohttp.ClientTimeout(total=seconds)),
        base_url=str(settings.graph_base_url),
        api_version=settings.graph_api_version,
        tokens=settings.graph_tokens(),
    )


def _media_keeper(kit: Kit[ApiSettings], engine: AsyncEngine) -> MediaKeeper | None:
    """What keeps inbound media, when HIKER_MEDIA_STORE is set (the api keeps none otherwise)."""
    settings = kit.settings
    if settings.media_store is None:
        return None
    seconds = settings.graph_timeout_seconds
    timeout = aiohttp.ClientTimeout(total=None, connect=seconds, sock_read=seconds)
    return MediaKeeper(
        graph_media(settings, lambda: kit.client_session(timeout=timeout)),
        MediaRecords(engine),
        retention_days=settings.media_retention_days,
    )


async def _upgrade_until_done(engine: AsyncEngine) -> None:
    """Upgrade the schema, retrying while the database cannot be reached or fails the upgrade
    (another replica's lock is waited for, not retried)."""
    backoff = Backoff(first=0.5, most=10.0)
    while True:
        try:
            await migrate.upgrade(engine)
        except Exception as exc:
            away = isinstance(classify(exc), Unavailable) or isinstance(exc, OSError | TimeoutError)
            delay = backoff.next_delay()
            # A database away needs no traceback; a migration failing on a reachable one does.
            log.warning(
                "database schema upgrade failed (%s); retrying in %.1fs",
                type(exc).__name__,
                delay,
                exc_info=None if away else exc,
            )
            await asyncio.sleep(delay)
        else:
            log.info("database schema at head", extra={"revision": migrate.head_revision()})
            return


SERVICE = api()


def create_app(
    settings: ApiSettings, *, engine: AsyncEngine | None = None, **parts: Unpack[Parts]
) -> web.Application:
    """The HTTP api; its operations app (metrics, health) is at ``app[OPS_APP]``."""
    return kernel.create_app(api(engine), settings, **parts)
