"""AMQP edge of sender: send commands, with the attempt their message carries, to the handler."""

from __future__ import annotations

from hiker.core.consumer import Headers, Route, Routes
from hiker.core.contracts import SendMessage
from hiker.core.topology import HEADER_ATTEMPT
from hiker.sender.handlers import SendHandler


def attempt_of(headers: Headers) -> int:
    value = headers.get(HEADER_ATTEMPT, 1)
    return value if isinstance(value, int) and value >= 1 else 1


def outbox_routes(handler: SendHandler) -> Routes:
    async def on_send(command: SendMessage, headers: Headers) -> None:
        await handler.handle(command, attempt_of(headers))

    return {SendMessage.type_name(): Route(SendMessage, on_send)}
