"""``hiker events``, declared: a stamp consumer, and one delivery consumer per endpoint."""

from __future__ import annotations

from typing import Final, Unpack

import aiohttp
from aiohttp import web

from hiker.core import kernel, topology
from hiker.core.kernel import Consume, Kit, Parts, Plan, Service
from hiker.core.keys import Keys
from hiker.core.settings import EventsSettings
from hiker.events.client import EndpointClient
from hiker.events.consumers import delivery_routes, stamp_routes
from hiker.events.handlers import DeliveryHandler, StampHandler
from hiker.events.metrics import EventsMetrics
from hiker.events.outbox import EventsOutbox
from hiker.events.sequence import Sequences

# Connections per endpoint: one per POST that may be under way at once, and a few to spare.
_SPARE_CONNECTIONS: Final = 4


def build(kit: Kit[EventsSettings]) -> Plan:
    settings = kit.settings
    endpoints = settings.endpoints()
    names = tuple(endpoint.name for endpoint in endpoints)
    metrics = EventsMetrics(kit.registry, names)
    outbox = EventsOutbox(kit.broker, names)
    stamp = StampHandler(
        Sequences(kit.redis, Keys(settings.redis_prefix)),
        outbox,
        metrics,
    )
    secret = settings.events_secret.get_secret_value().encode()
    consumes = [Consume(topology.EVENTS_INBOUND, stamp_routes(stamp), settings.prefetch)]
    for endpoint in endpoints:
        session = kit.client_session(
            timeout=aiohttp.ClientTimeout(total=settings.events_timeout_seconds),
            connector=aiohttp.TCPConnector(limit=settings.events_concurrency + _SPARE_CONNECTIONS),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        delivery = DeliveryHandler(
            endpoint.name,
            EndpointClient(session, endpoint.url, secret),
            outbox,
            metrics,
            window_seconds=settings.events_retry_hours * 3600,
        )
        consumes.append(
            Consume(
                topology.events_deliver_queue(endpoint.name),
                delivery_routes(delivery),
                settings.events_concurrency,
            )
        )
    return Plan(topology=topology.events_topology(names), consumes=consumes)


SERVICE = Service("events", EventsSettings, build)


def create_app(settings: EventsSettings, **parts: Unpack[Parts]) -> web.Application:
    """The operations app (metrics, health); starting it connects and starts delivering."""
    return kernel.create_app(SERVICE, settings, **parts)
