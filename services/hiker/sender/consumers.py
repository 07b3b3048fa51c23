"""AMQP edge of sender: send commands, with the attempt their message carries, to the handler."""

from __future__ import annotations

from hiker.core.consumer import Headers, Route, Routes
from hiker.core.contracts import SendMessage
from hiker.core.topology import HEADER_ATTEMPT, HEADER_PACED_UNTIL
from hiker.sender.handlers import SendHandler


def attempt_of(headers: Headers) -> int:
    value = headers.get(HEADER_ATTEMPT, 1)
    return value if isinstance(value, int) and value >= 1 else 1


def paced_until_of(headers: Headers) -> int | None:
    """The pacing slot a deferred send reserved already (None: it reserves one)."""
    value = headers.get(HEADER_PACED_UNTIL)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def outbox_routes(handler: SendHandler) -> Routes:
    async def on_send(command: SendMessage, headers: Headers) -> None:
        await handler.handle(command, attempt_of(headers), paced_until_us=paced_until_of(headers))

    return {SendMessage.type_name(): Route(SendMessage, on_send)}
