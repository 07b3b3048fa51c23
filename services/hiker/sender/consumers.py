"""AMQP edge of sender: decode send commands, read the attempt header, call the handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError

from hiker.core.broker import Reject
from hiker.core.contracts import SendMessage
from hiker.core.topology import HEADER_ATTEMPT
from hiker.sender.handlers import SendHandler


def attempt_of(message: AbstractIncomingMessage) -> int:
    value = (message.headers or {}).get(HEADER_ATTEMPT, 1)
    return value if isinstance(value, int) and value >= 1 else 1


def outbox_consumer(handler: SendHandler) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
    async def on_send(message: AbstractIncomingMessage) -> None:
        if message.type != SendMessage.type_name():
            raise Reject(f"unexpected message type {message.type!r}")
        try:
            command = SendMessage.model_validate_json(message.body)
        except ValidationError as exc:
            raise Reject(f"not a valid SendMessage: {exc.error_count()} errors") from None
        await handler.handle(command, attempt_of(message))

    return on_send
