"""The send commands of an AI turn: its one reply, and the typing indicator shown meanwhile."""

from __future__ import annotations

from collections.abc import Sequence

from hiker.core.actions import AnyAction, MarkRead
from hiker.core.contracts import AITurnScheduled, MessageReceived, SendMessage


def reply_command(
    turn: AITurnScheduled, waiting: Sequence[MessageReceived], actions: Sequence[AnyAction]
) -> SendMessage | None:
    """The one reply of a turn, keyed by the last message it answers: a turn done again after
    a crash sends under the same keys, which the sender sends once."""
    if not actions:
        return None
    key = f"ai:{turn.wamid}"
    return SendMessage(
        idempotency_key=key,
        phone_number_id=turn.phone_number_id,
        to=turn.user,
        wa_id=turn.wa_id,
        actions=tuple(actions),
        keys=tuple(key + (f"#{index}" if index else "") for index in range(len(actions))),
        kind="reply",
        correlation_id=turn.wamid,
        origin_received_at=waiting[-1].received_at,
    )


def typing_command(turn: AITurnScheduled, shown: int, now: float) -> SendMessage:
    """Mark the turn's last message read with the typing indicator (Meta's
    ``"typing_indicator": {"type": "text"}``), the ``shown``-th time this attempt."""
    return SendMessage(
        idempotency_key=f"aityping:{turn.wamid}:{turn.attempt}:{shown}",
        phone_number_id=turn.phone_number_id,
        to=turn.user,
        wa_id=turn.wa_id,
        actions=(MarkRead(message_id=turn.wamid, typing=True),),
        kind="receipt",
        correlation_id=turn.wamid,
        # Useful for 25 s from now, not from the message (which may be older).
        origin_received_at=now,
    )
