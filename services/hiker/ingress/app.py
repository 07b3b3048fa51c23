"""Ingress composition root: ``create_app(settings)`` wires the webhook routes to the broker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry

from hiker.core.broker import Broker, keep_trying
from hiker.core.observability import add_ops_routes, new_registry
from hiker.core.publisher import Bundler
from hiker.core.settings import IngressSettings
from hiker.core.topology import INGRESS_TOPOLOGY
from hiker.ingress.body import RequestLimits
from hiker.ingress.ingestor import Outcome, WebhookIngestor
from hiker.ingress.metrics import IngressMetrics
from hiker.ingress.routes import INGESTOR, METRICS, VERIFY_TOKEN, add_webhook_routes

log = logging.getLogger(__name__)

OPS_APP = web.AppKey("ops_app", web.Application)
BROKER = web.AppKey("broker", Broker)
BUNDLER = web.AppKey("bundler", Bundler)


def create_app(
    settings: IngressSettings,
    *,
    broker: Broker | None = None,
    registry: CollectorRegistry | None = None,
) -> web.Application:
    """The webhook application; its operations app (metrics, health) is at ``app[OPS_APP]``.

    The broker connects in the background once the app starts: until it does, ``/readyz`` says
    so and webhooks are answered 503, which Meta retries.
    """
    registry = registry or new_registry()
    broker = broker or Broker.of_service(
        settings, "hiker-ingress", publish_timeout=settings.publish_timeout_seconds
    )
    metrics = IngressMetrics(registry)
    # No decompression: Meta signs the bytes it sends, and nothing is inflated before the
    # signature is checked (a gzip body is then simply not JSON: 400).
    app = web.Application(
        client_max_size=settings.max_body_bytes, handler_args={"auto_decompress": False}
    )
    app[BROKER] = broker
    app[METRICS] = metrics
    app[VERIFY_TOKEN] = settings.verify_token
    events = Bundler(broker.publish, linger_seconds=settings.publish_linger_ms / 1000)
    app[BUNDLER] = events
    app[INGESTOR] = WebhookIngestor(
        app_secrets=[secret.get_secret_value().encode() for secret in settings.signing_secrets()],
        events=events,
        publish=broker.publish,
        metrics=metrics,
    )
    add_webhook_routes(app, RequestLimits.of(settings))
    app.cleanup_ctx.append(_broker_lifecycle)

    ops = web.Application()

    add_ops_routes(ops, registry, {"rabbitmq": broker.is_ready})
    app[OPS_APP] = ops
    # Zero-valued series from the start, so rate() and alerts see every outcome.
    for outcome in [o.name.lower() for o in Outcome] + ["too_large", "verified", "verify_rejected"]:
        metrics.webhooks.labels(outcome)
    return app


async def _broker_lifecycle(app: web.Application) -> AsyncIterator[None]:
    broker = app[BROKER]

    async def start() -> None:
        await broker.connect(INGRESS_TOPOLOGY)
        broker.mark_serving()

    connecting = asyncio.create_task(keep_trying(start, "RabbitMQ"))
    yield
    connecting.cancel()
    await app[BUNDLER].aclose()
    await broker.close()
