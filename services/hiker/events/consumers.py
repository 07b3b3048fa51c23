"""AMQP edges of ``hiker events``: facts to the stamp, an endpoint's events (with the attempt
and first-attempt time their headers carry) to its delivery."""

from __future__ import annotations

from hiker.core import topology
from hiker.core.consumer import Headers, Route, Routes
from hiker.core.contracts import MessageReceived, OwnerChanged, SendParked, StatusReceived
from hiker.events.handlers import DeliveryHandler, StampHandler
from hiker.events.model import BackendEvent


def stamp_routes(handler: StampHandler) -> Routes:
    async def on_message(message: MessageReceived, _: Headers) -> None:
        await handler.on_message(message)

    async def on_status(status: StatusReceived, _: Headers) -> None:
        await handler.on_status(status)

    async def on_parked(parked: SendParked, _: Headers) -> None:
        await handler.on_parked(parked)

    async def on_owner(change: OwnerChanged, _: Headers) -> None:
        await handler.on_owner(change)

    return {
        MessageReceived.type_name(): Route(MessageReceived, on_message),
        StatusReceived.type_name(): Route(StatusReceived, on_status),
        SendParked.type_name(): Route(SendParked, on_parked),
        OwnerChanged.type_name(): Route(OwnerChanged, on_owner),
    }


def attempt_of(headers: Headers) -> int:
    value = headers.get(topology.HEADER_ATTEMPT, 1)
    return value if type(value) is int and value >= 1 else 1


def first_attempt_at(headers: Headers) -> float | None:
    raw = headers.get(topology.HEADER_FIRST_ATTEMPT_AT)
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    try:
        return float(text) if isinstance(text, str) else None
    except ValueError:
        return None


def delivery_routes(handler: DeliveryHandler) -> Routes:
    async def on_event(event: BackendEvent, headers: Headers) -> None:
        await handler.deliver(
            event, attempt=attempt_of(headers), first_attempt_at=first_attempt_at(headers)
        )

    return {BackendEvent.type_name(): Route(BackendEvent, on_event)}
