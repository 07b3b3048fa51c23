"""AMQP edge of conversation: which contract each queue carries, and which handler takes it."""

from __future__ import annotations

import logging

from hiker.conversation.ai.engine import AITurns
from hiker.conversation.handlers import ConversationHandlers
from hiker.core.consumer import Headers, Route, Routes
from hiker.core.contracts import (
    AITurnScheduled,
    ControlChanged,
    MessageEchoed,
    MessageReceived,
    MessageSent,
    StatusReceived,
    TimerScheduled,
    WebhookErrorReceived,
)

log = logging.getLogger(__name__)

# What ``TimerScheduled`` was called (as a message's AMQP type) before it carried reminders too.
LEGACY_TIMER_TYPE = "IdleTimerStarted"


def inbound_routes(handlers: ConversationHandlers) -> Routes:
    async def on_message(event: MessageReceived, _: Headers) -> None:
        await handlers.on_message(event)

    async def on_status(event: StatusReceived, _: Headers) -> None:
        await handlers.on_status(event)

    async def on_error(event: WebhookErrorReceived, _: Headers) -> None:
        await handlers.on_webhook_error(event)

    async def on_echo(event: MessageEchoed, _: Headers) -> None:
        await handlers.on_echo(event)

    async def on_control(event: ControlChanged, _: Headers) -> None:
        await handlers.on_control(event)

    return {
        MessageReceived.type_name(): Route(MessageReceived, on_message),
        StatusReceived.type_name(): Route(StatusReceived, on_status),
        WebhookErrorReceived.type_name(): Route(WebhookErrorReceived, on_error),
        MessageEchoed.type_name(): Route(MessageEchoed, on_echo),
        ControlChanged.type_name(): Route(ControlChanged, on_control),
    }


def timers_routes(handlers: ConversationHandlers) -> Routes:
    async def on_fired(timer: TimerScheduled, headers: Headers) -> None:
        reason = _death_reason(headers)
        if reason not in (None, "expired"):
            # Only expiry should bring a timer here; anything else means the topology changed.
            log.warning("timer dead-lettered for an unexpected reason", extra={"reason": reason})
        await handlers.on_timer_fired(timer)

    route = Route(TimerScheduled, on_fired)
    # Timers set before the contract's rename wait in their queues under its old name.
    return {TimerScheduled.type_name(): route, LEGACY_TIMER_TYPE: route}


def ai_routes(turns: AITurns) -> Routes:
    async def on_due(turn: AITurnScheduled, _: Headers) -> None:
        await turns.on_due(turn)

    return {AITurnScheduled.type_name(): Route(AITurnScheduled, on_due)}


def sent_routes(handlers: ConversationHandlers) -> Routes:
    async def on_sent(event: MessageSent, _: Headers) -> None:
        await handlers.on_sent(event)

    return {MessageSent.type_name(): Route(MessageSent, on_sent)}


def _death_reason(headers: Headers) -> str | None:
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        reason = deaths[0].get("reason")
        return reason.decode() if isinstance(reason, bytes) else str(reason)
    return None
