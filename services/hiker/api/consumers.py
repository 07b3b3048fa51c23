"""AMQP edge of the api: the records queue's contracts to the record handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from hiker.api.broadcast_tracking import BroadcastTracker
from hiker.api.recording import RecordHandler
from hiker.core.consumer import Headers, Route, Routes
from hiker.core.contracts import (
    Contract,
    MessageEchoed,
    MessageReceived,
    MessageSent,
    OwnerChanged,
    SendParked,
    StatusReceived,
    TemplateCategoryChanged,
    TemplateQualityChanged,
    TemplateStatusChanged,
    WebhookErrorReceived,
)


def records_routes(handler: RecordHandler, broadcasts: BroadcastTracker | None = None) -> Routes:
    """Each contract to its record; with ``broadcasts``, then to the broadcasts' counts and
    opt-outs too (after the record: a redelivery rewrites nothing and tries these again)."""

    def route(contract: type[Contract], handle: Callable[[Any], Awaitable[None]]) -> Route[Any]:
        async def on_contract(event: Any, _: Headers) -> None:
            await handle(event)

        return Route(contract, on_contract)

    routes: dict[type[Contract], Callable[[Any], Awaitable[None]]] = {
        MessageReceived: handler.message_received,
        StatusReceived: handler.status_received,
        WebhookErrorReceived: handler.webhook_error,
        MessageSent: handler.message_sent,
        SendParked: handler.send_parked,
        MessageEchoed: handler.message_echoed,
        OwnerChanged: handler.owner_changed,
        TemplateStatusChanged: handler.template_changed,
        TemplateQualityChanged: handler.template_changed,
        TemplateCategoryChanged: handler.template_changed,
    }
    if broadcasts is not None:
        also: dict[type[Contract], Callable[[Any], Awaitable[None]]] = {
            MessageReceived: broadcasts.message_received,
            StatusReceived: broadcasts.status_received,
            MessageSent: broadcasts.message_sent,
            SendParked: broadcasts.send_parked,
        }
        routes = {c: _then(h, also[c]) if c in also else h for c, h in routes.items()}
    return {contract.type_name(): route(contract, handle) for contract, handle in routes.items()}


def _then(
    first: Callable[[Any], Awaitable[None]], second: Callable[[Any], Awaitable[None]]
) -> Callable[[Any], Awaitable[None]]:
    async def both(event: Any) -> None:
        await first(event)
        await second(event)

    return both
