"""conversation's AMQP edge: which contract each message type carries."""

from __future__ import annotations

from typing import Any, cast

from hiker.conversation.consumers import LEGACY_TIMER_TYPE, timers_routes
from hiker.conversation.handlers import ConversationHandlers
from hiker.core.contracts import TimerScheduled


def test_timers_set_before_the_rename_still_fire() -> None:
    routes = timers_routes(cast(ConversationHandlers, cast(Any, object())))
    assert routes[LEGACY_TIMER_TYPE] is routes[TimerScheduled.type_name()]
    assert routes[LEGACY_TIMER_TYPE].contract is TimerScheduled
