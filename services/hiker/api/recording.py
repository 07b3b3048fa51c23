"""Recording what happened: each inbound event and send outcome becomes its record, written
once whatever the redeliveries (the store's unique keys make a repeat write nothing)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from hiker.api import history, templates
from hiker.api.metrics import ApiMetrics
from hiker.core.contracts import (
    MessageEchoed,
    MessageReceived,
    MessageSent,
    OwnerChanged,
    SendParked,
    StatusReceived,
    TemplateEvent,
    WebhookErrorReceived,
)

log = logging.getLogger(__name__)


class Records(Protocol):
    """Where records are written (``db.repository.RecordStore``); each returns whether it
    wrote anything."""

    async def add_inbound(self, message: history.Inbound) -> bool: ...

    async def add_outbound(self, message: history.Outbound) -> bool: ...

    async def add_parked(self, send: history.Parked) -> bool: ...

    async def add_status(self, reported: history.Status) -> bool: ...

    async def add_webhook_error(self, error: history.WebhookError) -> bool: ...


class DeliveryFacts(Protocol):
    """Where prices and templates are written (``db.delivery.DeliveryRecords``)."""

    async def add_price(self, price: history.Price) -> bool: ...

    async def add_template(self, change: templates.TemplateChange) -> bool: ...


class RecordHandler:
    def __init__(
        self,
        store: Records,
        metrics: ApiMetrics,
        *,
        delivery: DeliveryFacts | None = None,
        templates_changed: Callable[[], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.time,
        keep_media: Callable[[MessageReceived], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        # Prices and templates; without it (tests of the rest) they are not recorded.
        self._delivery = delivery
        # Shows a recorded template change in this replica's metrics at once.
        self._templates_changed = templates_changed
        # Stores the medium a message carries (``api.media``), when HIKER_MEDIA_STORE is set.
        self._keep_media = keep_media
        self._metrics = metrics
        self._clock = clock

    async def message_received(self, event: MessageReceived) -> None:
        written = await self._store.add_inbound(history.inbound(event))
        self._count("message_in", written, event.received_at)
        if self._keep_media is not None:
            await self._keep_media(event)

    async def message_sent(self, event: MessageSent) -> None:
        written = await self._store.add_outbound(history.sent(event))
        self._count("message_out", written, event.sent_at)

    async def send_parked(self, event: SendParked) -> None:
        written = await self._store.add_parked(history.parked(event))
        self._count("parked", written, event.parked_at)
        if written:
            log.info(
                "send parked recorded",
                extra={"key": event.idempotency_key, "to": event.to, "reason": event.reason},
            )

    async def message_echoed(self, event: MessageEchoed) -> None:
        """A message a person sent from the WhatsApp Business app: outbound, kind ``person``."""
        written = await self._store.add_outbound(history.echoed(event))
        self._count("message_out", written, event.received_at)

    async def owner_changed(self, event: OwnerChanged) -> None:
        """Not history: who owns a conversation is read from Redis (``GET /v1/conversations``).
        It reaches this queue only because the queue takes every outcome."""

    async def status_received(self, event: StatusReceived) -> None:
        """A status, and what it tells beyond itself: a failure (counted by Meta's code, each
        message once) and the message's price (counted once, whichever status carried it).
        The api counts these: it is the one service that sees each status once, whatever
        Meta's redeliveries and the replicas (a unique key decides which write is the one)."""
        written = await self._store.add_status(history.status(event))
        self._count("status", written, event.received_at)
        if written and event.status == "failed":
            code = str(event.errors[0].code) if event.errors else "none"
            self._metrics.failed.labels(code).inc()
            log.warning(
                "send failed after Graph accepted it",
                extra={"wamid": event.message_id, "code": code, "to": event.recipient_id},
            )
        price = history.price(event)
        delivery = self._delivery
        if price is not None and delivery is not None and await delivery.add_price(price):
            self._metrics.billed.labels(price.category or "none", price.type or "none").inc()

    async def template_changed(self, event: TemplateEvent) -> None:
        if self._delivery is None:
            return
        written = await self._delivery.add_template(templates.change_of(event, self._clock()))
        self._count("template", written, event.received_at)
        if written and self._templates_changed is not None:
            await self._templates_changed()
        if written and templates.stops_sends(event):
            log.warning(
                "template stopped by Meta: its sends are parked until it is approved again",
                extra={"template": event.name, "language": event.language},
            )

    async def webhook_error(self, event: WebhookErrorReceived) -> None:
        written = await self._store.add_webhook_error(history.webhook_error(event))
        self._count("webhook_error", written, event.received_at)

    def _count(self, kind: str, written: bool, happened_at: float) -> None:
        if not written:
            self._metrics.duplicates.labels(kind).inc()
            return
        self._metrics.records.labels(kind).inc()
        self._metrics.lag.observe(max(0.0, self._clock() - happened_at))
