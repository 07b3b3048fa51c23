"""HTTP edge of ingress: translate requests to the ingestor and outcomes to status codes."""

from __future__ import annotations

import hmac

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError
from pydantic import SecretStr

from hiker.core.signature import SIGNATURE_HEADER
from hiker.ingress.body import BodyTimedOut, BodyTooLarge, InFlight, RequestLimits, read_body
from hiker.ingress.ingestor import Outcome, WebhookIngestor
from hiker.ingress.metrics import IngressMetrics

INGESTOR = web.AppKey("ingestor", WebhookIngestor)
METRICS = web.AppKey("ingress_metrics", IngressMetrics)
VERIFY_TOKEN = web.AppKey("verify_token", SecretStr)
LIMITS = web.AppKey("request_limits", RequestLimits)
IN_FLIGHT = web.AppKey("in_flight", InFlight)

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
    in_flight = request.app[IN_FLIGHT]
    if not in_flight.enter():
        metrics.outcome("busy").inc()
        # Not read: the body is discarded as it comes (aiohttp's lingering close), not held.
        return _closing(503, "too many requests at once; retry later", retry_after="1")
    try:
        return await _receive(request)
    finally:
        in_flight.leave()


async def _receive(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    limits = request.app[LIMITS]
    try:
        body = await read_body(request, limits)
    except BodyTooLarge:
        metrics.outcome("too_large").inc()
        return _closing(413, f"body larger than {limits.max_body_bytes} bytes")
    except BodyTimedOut:
        metrics.outcome("body_timeout").inc()
        return await _answer_and_close(request, 408, "body not received in time")
    except RequestPayloadError:
        # A body that breaks its own transfer encoding is as malformed as bad JSON.
        metrics.outcome(Outcome.MALFORMED.name.lower()).inc()
        return web.Response(status=400, text=_OUTCOME_TEXT[Outcome.MALFORMED])
    outcome = await request.app[INGESTOR].ingest(body, request.headers.get(SIGNATURE_HEADER))
    metrics.outcome(outcome.name.lower()).inc()
    headers = {"Retry-After": "5"} if outcome is Outcome.UNAVAILABLE else None
    return web.Response(status=outcome.value, text=_OUTCOME_TEXT[outcome], headers=headers)


def _closing(status: int, text: str, *, retry_after: str | None = None) -> web.Response:
    """A refusal sent before the body was read: the connection is not reused (what is left of
    the body could not be told from a next request)."""
    response = web.Response(
        status=status, text=text, headers={"Retry-After": retry_after} if retry_after else None
    )
    response.force_close()
    return response


async def _answer_and_close(request: web.Request, status: int, text: str) -> web.Response:
    """Send the answer, then close at once: a client that stalled gets no lingering close (in
    which aiohttp would wait up to 10 s more for the rest of its body)."""
    response = _closing(status, text)
    await response.prepare(request)
    await response.write_eof()
    request.protocol.force_close()  # the transport sends what it holds, then closes
    return response


def add_webhook_routes(app: web.Application, limits: RequestLimits | None = None) -> None:
    """The webhook's routes on ``app`` (``app[METRICS]`` and ``app[INGESTOR]`` set), bounded by
    ``limits`` (``RequestLimits.of(settings)``; the defaults when None)."""
    limits = limits or RequestLimits()
    app[LIMITS] = limits
    app[IN_FLIGHT] = InFlight(limits.max_concurrent)
    for outcome in ("busy", "body_timeout", "too_large"):
        app[METRICS].outcome(outcome)  # zero-valued from the start, for rate() and alerts
    app.router.add_get("/webhook", verify_subscription)
    app.router.add_post("/webhook", receive_update)
