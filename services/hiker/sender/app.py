"""Sender, declared: send commands from the outbox to the Graph API, paced, retried, parked."""

from __future__ import annotations

from typing import Unpack

import aiohttp
from aiohttp import web

from hiker.core import kernel, topology
from hiker.core.claims import ClaimStore
from hiker.core.kernel import Consume, Kit, Parts, Plan, Service
from hiker.core.keys import Keys
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


def build(kit: Kit[SenderSettings]) -> Plan:
    settings = kit.settings
    keys = Keys(settings.redis_prefix, adopt_legacy=settings.adopts_legacy_keys)
    outbox = SenderOutbox(kit.broker, kit.bundler(OUTCOMES_LINGER_SECONDS))
    session = kit.client_session(
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
            kit.redis,
            lease_seconds=settings.graph_timeout_seconds + _CLAIM_HEADROOM_SECONDS,
            done_ttl_seconds=_SENT_TTL_SECONDS,
            legacy=keys.legacy,
        ),
        keys=keys,
        schedule_retry=outbox.retry,
        park=outbox.park,
        outcomes=outbox,
        metrics=SenderMetrics(kit.registry),
        max_attempts=settings.max_attempts,
        # A call reports back within its timeout; the margin covers the event loop's delays.
        call_deadline_seconds=settings.graph_timeout_seconds + 2,
        max_concurrent_calls=GRAPH_CONNECTIONS,
    )
    return Plan(
        topology=topology.SENDER_TOPOLOGY,
        consumes=(Consume(topology.SENDER_OUTBOX, outbox_routes(handler), settings.prefetch),),
    )


SERVICE = Service(
    "sender",
    SenderSettings,
    build,
)


def create_app(settings: SenderSettings, **parts: Unpack[Parts]) -> web.Application:
    """The operations app (metrics, health); starting it connects and starts sending."""
    return kernel.create_app(SERVICE, settings, **parts)
