"""Ingest a webhook: verify, route, publish every update with confirms, decide the answer."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Final

from hiker.core import topology
from hiker.core.contracts import (
    ChangeReceived,
    ControlChanged,
    MessageEchoed,
    MessageReceived,
    StatusReceived,
    TemplateCategoryChanged,
    TemplateQualityChanged,
    TemplateStatusChanged,
    WebhookErrorReceived,
)
from hiker.core.errors import PublishFailed
from hiker.core.publisher import Bundler, Destination, Publish
from hiker.core.signature import SignatureCheck, check_signature
from hiker.ingress.metrics import IngressMetrics
from hiker.ingress.webhook import MalformedBody, Routed, Unclassified, parse, route

log = logging.getLogger(__name__)


class Outcome(Enum):
    """What became of a webhook; each maps to one HTTP status and one metric label."""

    ACCEPTED = 200
    MISSING_SIGNATURE = 401
    BAD_SIGNATURE = 403
    MALFORMED = 400
    UNAVAILABLE = 503


_KINDS: dict[type, str] = {
    MessageReceived: "message",
    StatusReceived: "status",
    WebhookErrorReceived: "error",
    ChangeReceived: "change",
    MessageEchoed: "echo",
    ControlChanged: "control",
    TemplateStatusChanged: "template",
    TemplateQualityChanged: "template",
    TemplateCategoryChanged: "template",
}


# Destinations kept built. Routing keys come from the payload (message.<type>, status.<status>,
# change.<field>): a handful in practice, but one per value Meta ever sends in principle.
_DESTINATIONS_KEPT: Final = 256


class WebhookIngestor:
    """Verifies a webhook against ``app_secrets`` (any of them) and publishes its updates."""

    def __init__(
        self,
        *,
        app_secrets: Sequence[bytes],
        events: Bundler,
        publish: Publish,
        metrics: IngressMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not app_secrets:
            raise ValueError("no app secret: every webhook would be refused")
        self._secrets = tuple(app_secrets)
        self._events = events
        self._publish = publish
        self._metrics = metrics
        self._clock = clock
        # Label lookups cost a lock and a dict walk per call; resolve each child once (hot path).
        self._event_counters = {kind: metrics.events.labels(kind) for kind in _KINDS.values()}
        self._unknown_counter = metrics.events.labels("unknown")
        # Built once per routing key, as a cache bounded by _DESTINATIONS_KEPT: when it is full it
        # is emptied and refills with the keys in use (a Destination is cheap to build again), so
        # a stream of never-seen values cannot grow it.
        self._destinations: dict[str, Destination] = {}

    async def ingest(self, body: bytes, signature: str | None) -> Outcome:
        check = check_signature(self._secrets, body, signature)
        if check is SignatureCheck.MISSING:
            return Outcome.MISSING_SIGNATURE
        if check is SignatureCheck.INVALID:
            return Outcome.BAD_SIGNATURE
        try:
            document = parse(body)
        except MalformedBody:
            return Outcome.MALFORMED
        started = time.perf_counter()
        result = route(document, received_at=self._clock())
        try:
            if isinstance(result, Unclassified):
                await self._keep_unclassified(body, result)
            elif len(result) == 1:
                # The common case (one message per POST): no task or gather to set up.
                await self._publish_routed(result[0])
            else:
                # Bundled by routing key, every confirm awaited together.
                await asyncio.gather(*(self._publish_routed(item) for item in result))
        except PublishFailed as exc:
            log.warning("broker did not take the webhook; answering 503", extra={"error": str(exc)})
            return Outcome.UNAVAILABLE
        self._metrics.publish_latency.observe(time.perf_counter() - started)
        return Outcome.ACCEPTED

    async def _publish_routed(self, item: Routed) -> None:
        destination = self._destinations.get(item.routing_key)
        if destination is None:
            destination = Destination(
                topology.INBOUND_EXCHANGE, item.routing_key, item.event.type_name()
            )
            if len(self._destinations) >= _DESTINATIONS_KEPT:
                self._destinations.clear()
            self._destinations[item.routing_key] = destination
        await self._events.publish(
            destination,
            item.event,
            message_id=item.correlation_id,
            correlation_id=item.correlation_id,
        )
        if item.routing_key == topology.RK_UNKNOWN:
            self._unknown_counter.inc()
        else:
            self._event_counters[_KINDS[type(item.event)]].inc()

    async def _keep_unclassified(self, body: bytes, result: Unclassified) -> None:
        log.warning(
            "signed webhook of unknown shape kept for inspection", extra={"reason": result.reason}
        )
        await self._publish(
            topology.INBOUND_EXCHANGE, topology.RK_UNKNOWN, body, type_name="UnclassifiedWebhook"
        )
        self._unknown_counter.inc()
