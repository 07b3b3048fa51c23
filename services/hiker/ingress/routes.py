"""HTTP edge of ingress: translate requests to the ingestor and outcomes to status codes."""

from __future__ import annotations

import hmac

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError
from pydantic import SecretStr

from hiker.core.signature import SIGNATURE_HEADER
from hiker.ingress.ingestor import Outcome, WebhookIngestor
from hiker.ingress.metrics import IngressMetrics

INGESTOR = web.AppKey("ingestor", WebhookIngestor)
METRICS = web.AppKey("ingress_metrics", IngressMetrics)
VERIFY_TOKEN = web.AppKey("verify_token", SecretStr)

_OUTCOME_TEXT = {
    Outcome.ACCEPTED: "ok",
    Outcome.MISSING_SIGNATURE: f"missing {SIGNATURE_HEADER} header",
    Outcome.BAD_SIGNATURE: "signature does not match",
    Outcome.MALFORMED: "body is not valid JSON",
    Outcome.UNAVAILABLE: "temporarily unable to accept; retry later",
}


async def verify_subscription(request: web.Request) -> web.Response:
    """Meta's one-time handshake: echo ``hub.challenge`` when the verify token matches."""
    query = request.query
    expected = request.app[VERIFY_TOKEN].get_secret_value().encode()
    token = query.get("hub.verify_token", "").encode()
    if query.get("hub.mode") == "subscribe" and hmac.compare_digest(token, expected):
        request.app[METRICS].webhooks.labels("verified").inc()
        return web.Response(text=query.get("hub.challenge", ""))
    request.app[METRICS].webhooks.labels("verify_rejected").inc()
    return web.Response(status=403, text="verification failed")


async def receive_update(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        metrics.webhooks.labels("too_large").inc()
        raise
    except RequestPayloadError:
        # A body that breaks its own transfer encoding is as malformed as bad JSON.
        metrics.outcome(Outcome.MALFORMED.name.lower()).inc()
        return web.Response(status=400, text=_OUTCOME_TEXT[Outcome.MALFORMED])
    outcome = await request.app[INGESTOR].ingest(body, request.headers.get(SIGNATURE_HEADER))
    metrics.outcome(outcome.name.lower()).inc()
    headers = {"Retry-After": "5"} if outcome is Outcome.UNAVAILABLE else None
    return web.Response(status=outcome.value, text=_OUTCOME_TEXT[outcome], headers=headers)


def add_webhook_routes(app: web.Application) -> None:
    app.router.add_get("/webhook", verify_subscription)
    app.router.add_post("/webhook", receive_update)
