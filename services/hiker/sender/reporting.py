"""What the sender says of each send: its metrics and log line, and the events that tell
``hiker api``'s history that it was sent or parked. Pure but for the metrics and the log."""

from __future__ import annotations

import json
import logging

from hiker.core.actions import MarkRead, readable
from hiker.core.contracts import MessageSent, SendMessage, SendParked
from hiker.core.parked_headers import ParkedHeaders
from hiker.sender.graph import GraphCall
from hiker.sender.metrics import SenderMetrics
from hiker.sender.retry import Verdict

log = logging.getLogger(__name__)


def sent_event(
    command: SendMessage, index: int, graph_message_id: str | None, now: float
) -> MessageSent:
    """Action ``index`` of ``command`` was accepted by Graph ``now``."""
    action = command.actions[index]
    return MessageSent(
        idempotency_key=command.action_key(index),
        phone_number_id=command.phone_number_id,
        to=command.to,
        kind=command.kind,
        correlation_id=command.correlation_id,
        action_type=action.type,
        text=readable(action),
        graph_message_id=graph_message_id,
        sent_at=now,
    )


def parked_event(command: SendMessage, index: int, why: ParkedHeaders, now: float) -> SendParked:
    """Action ``index`` of ``command`` (and the rest after it) was parked, for ``why``."""
    action = command.actions[index]
    return SendParked(
        idempotency_key=command.action_key(index),
        phone_number_id=command.phone_number_id,
        to=command.to,
        kind=command.kind,
        correlation_id=command.correlation_id,
        reason=why.reason,
        graph_status=why.graph_status,
        graph_code=why.graph_code,
        graph_error=why.graph_error,
        parked_at=why.parked_at or now,
        action_type=action.type,
        text=readable(action),
    )


def report(
    metrics: SenderMetrics,
    command: SendMessage,
    index: int,
    call: GraphCall,
    verdict: Verdict,
    attempt: int,
    now: float,
) -> None:
    """Count and log what became of one Graph call."""
    outcome = call.outcome
    action = command.actions[index]
    context = {
        "key": command.action_key(index),
        "correlation_id": command.correlation_id,
        "to": command.to,
        "action": action.type,
        "attempt": attempt,
        "status": outcome.status_label,
        "code": outcome.code_label,
    }
    if isinstance(action, MarkRead):
        metrics.receipts.labels("sent" if verdict is Verdict.SENT else "failed").inc()
        return
    if verdict is Verdict.SENT:
        metrics.sent.labels(command.kind).inc()
        if command.origin_received_at is not None and command.kind == "reply":
            metrics.end_to_end.observe(max(0.0, now - command.origin_received_at))
        log.info("message sent", extra={**context, "graph_message_id": outcome.message_id})
    elif verdict is Verdict.RETRY:
        metrics.retries.labels(outcome.code_label).inc()
        log.warning("send failed; will retry", extra=context)
    else:
        metrics.parked.labels(outcome.code_label).inc()
        log.error(
            "send parked",
            extra={**context, "graph_error": json.dumps(call.error) if call.error else None},
        )
