"""AMQP edge of conversation: decode deliveries into contracts and hand them to the handlers."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError

from hiker.conversation.handlers import ConversationHandlers
from hiker.core.broker import Reject
from hiker.core.contracts import (
    Contract,
    IdleTimerStarted,
    MessageReceived,
    StatusReceived,
    WebhookErrorReceived,
)

log = logging.getLogger(__name__)

C = TypeVar("C", bound=Contract)


def decode(message: AbstractIncomingMessage, contract: type[C]) -> C:
    """The payload as ``contract``; Reject (to the poison queue) when it is not one."""
    try:
        return contract.model_validate_json(message.body)
    except ValidationError as exc:
        raise Reject(f"not a valid {contract.type_name()}: {exc.error_count()} errors") from None


def inbound_consumer(
    handlers: ConversationHandlers,
) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
    routes: dict[str, tuple[type[Contract], Callable[[Any], Awaitable[None]]]] = {
        MessageReceived.type_name(): (MessageReceived, handlers.on_message),
        StatusReceived.type_name(): (StatusReceived, handlers.on_status),
        WebhookErrorReceived.type_name(): (WebhookErrorReceived, handlers.on_webhook_error),
    }

    async def on_inbound(message: AbstractIncomingMessage) -> None:
        route = routes.get(message.type or "")
        if route is None:
            raise Reject(f"unexpected message type {message.type!r}")
        contract, handle = route
        await handle(decode(message, contract))

    return on_inbound


def timers_consumer(
    handlers: ConversationHandlers,
) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
    async def on_fired(message: AbstractIncomingMessage) -> None:
        reason = _death_reason(message)
        if reason not in (None, "expired"):
            # Only expiry should bring a timer here; anything else means the topology changed.
            log.warning("timer dead-lettered for an unexpected reason", extra={"reason": reason})
        await handlers.on_timer_fired(decode(message, IdleTimerStarted))

    return on_fired


def _death_reason(message: AbstractIncomingMessage) -> str | None:
    deaths = (message.headers or {}).get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        reason = deaths[0].get("reason")
        return reason.decode() if isinstance(reason, bytes) else str(reason)
    return None
