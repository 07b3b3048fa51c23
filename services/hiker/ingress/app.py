"""Ingress, declared: the webhook routes in front, publishing every update to the broker.

The broker connects in the background once the service starts: until it does, ``/readyz`` says
so and webhooks are answered 503, which Meta retries.
"""

from __future__ import annotations

from typing import Unpack

from aiohttp import web

from hiker.core import kernel
from hiker.core.kernel import OPS_APP, Kit, Parts, Plan, Serve, Service
from hiker.core.settings import IngressSettings
from hiker.core.topology import INGRESS_TOPOLOGY
from hiker.ingress.body import RequestLimits
from hiker.ingress.ingestor import Outcome, WebhookIngestor
from hiker.ingress.metrics import IngressMetrics
from hiker.ingress.routes import INGESTOR, METRICS, VERIFY_TOKEN, add_webhook_routes

__all__ = ["OPS_APP", "SERVICE", "create_app"]


def build(kit: Kit[IngressSettings]) -> Plan:
    settings = kit.settings
    metrics = IngressMetrics(kit.registry)
    # No decompression: Meta signs the bytes it sends, and nothing is inflated before the
    # signature is checked (a gzip body is then simply not JSON: 400).
    app = web.Application(
        client_max_size=settings.max_body_bytes, handler_args={"auto_decompress": False}
    )
    app[METRICS] = metrics
    app[VERIFY_TOKEN] = settings.verify_token
    app[INGESTOR] = WebhookIngestor(
        app_secrets=[secret.get_secret_value().encode() for secret in settings.signing_secrets()],
        events=kit.bundler(),
        publish=kit.broker.publish,
        metrics=metrics,
    )
    add_webhook_routes(app, RequestLimits.of(settings))
    # Zero-valued series from the start, so rate() and alerts see every outcome.
    for outcome in [o.name.lower() for o in Outcome] + ["too_large", "verified", "verify_rejected"]:
        metrics.webhooks.labels(outcome)
    return Plan(
        topology=INGRESS_TOPOLOGY,
        serves=Serve(app, settings.http_host, settings.http_port),
    )


SERVICE = Service(
    "ingress",
    IngressSettings,
    build,
)


def create_app(settings: IngressSettings, **parts: Unpack[Parts]) -> web.Application:
    """The webhook application; its operations app (metrics, health) is at ``app[OPS_APP]``."""
    return kernel.create_app(SERVICE, settings, **parts)
