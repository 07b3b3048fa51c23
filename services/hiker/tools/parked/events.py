"""``hiker parked --events``: events a backend never took, listed, and put back on their way.

``hiker events`` parks an event in ``hiker.events.parked`` when its endpoint refused it for good
(a 4xx other than 408/429) or kept failing past ``HIKER_EVENTS_RETRY_HOURS``; the broker parks
there too what overflowed an endpoint's queue or could not be handled. ``replay`` publishes each
back to its endpoint's queue as a first attempt, byte for byte: same ``id``, same ``seq``, so a
receiver that got it before drops the copy. The parked copy is acked only after the broker
confirmed the replayed one (``hiker.tools.heldqueue``): a crash may replay an event twice,
never lose one.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from hiker.core import topology
from hiker.core.observability import mask_phone
from hiker.events.model import BackendEvent
from hiker.events.parking import ParkedEvent
from hiker.tools.heldqueue import (
    Address,
    Copy,
    HeldQueue,
    Listing,
    list_queue,
    reading,
    replaying,
)


@dataclass(frozen=True)
class ParkedDelivery:
    """A parked event as an operator sees it: where it was going, why it stopped."""

    event: BackendEvent | None  # None when the body is not a readable event
    why: ParkedEvent

    @classmethod
    def from_message(cls, message: AbstractIncomingMessage) -> ParkedDelivery:
        try:
            event: BackendEvent | None = BackendEvent.model_validate_json(message.body)
        except ValueError:
            event = None
        return cls(event, ParkedEvent.from_headers(message.headers or {}))

    def matches(self, reasons: Collection[str]) -> bool:
        """No filter matches all; else the reason, the last HTTP status or the endpoint."""
        why = self.why
        return not reasons or bool({why.reason, why.status, why.endpoint} & set(reasons))

    def row(self, now: float) -> dict[str, Any]:
        """What ``list`` shows: the user masked, never the message's text."""
        event, why = self.event, self.why
        return {
            "age_seconds": (
                round(max(0.0, now - why.parked_at), 1) if why.parked_at is not None else None
            ),
            "reason": why.reason,
            "status": why.status,
            "endpoint": why.endpoint or None,
            "attempt": why.attempt,
            "type": event.type if event else None,
            "user": mask_phone(event.user) if event else None,
            "phone_number_id": event.phone_number_id if event else None,
            "id": event.id if event else None,
            "seq": event.seq if event else None,
            "readable": event is not None,
        }


@dataclass
class EventsReplay:
    """What a replay of parked events did."""

    replayed: int = 0
    left_parked: int = 0  # not matching, unreadable, no endpoint known, or held elsewhere
    unreadable: int = 0
    no_endpoint: int = 0


async def list_parked_events(
    amqp_url: str, *, limit: int, reasons: Collection[str] = ()
) -> Listing[ParkedDelivery]:
    """Up to ``limit`` parked events matching ``reasons``, oldest first; the queue unchanged."""
    return await list_queue(
        amqp_url,
        topology.EVENTS_PARKED_QUEUE,
        ParkedDelivery.from_message,
        lambda delivery: delivery.matches(reasons),
        limit,
    )


async def replay_parked_events(
    amqp_url: str, *, reasons: Collection[str] = (), limit: int | None = None
) -> EventsReplay:
    """Publish matching parked events to their endpoint's queue again, at most ``limit``."""
    report = EventsReplay()
    async with (
        reading(amqp_url, [topology.EVENTS_PARKED_QUEUE]) as queues,
        replaying(amqp_url) as replayer,
    ):
        parked = queues[topology.EVENTS_PARKED_QUEUE]
        try:
            async for message in parked.messages():
                copy = _copy_of(parked, message, reasons, report)
                if copy is not None:
                    await replayer.replay(parked, message, copy)
                    report.replayed += 1
                if limit is not None and report.replayed >= limit:
                    break
        finally:
            report.left_parked += parked.held
    return report


def _copy_of(
    parked: HeldQueue,
    message: AbstractIncomingMessage,
    reasons: Collection[str],
    report: EventsReplay,
) -> Copy | None:
    delivery = ParkedDelivery.from_message(message)
    if not delivery.matches(reasons):
        return None
    if delivery.event is None:
        report.unreadable += 1
        return None
    if not delivery.why.endpoint:
        report.no_endpoint += 1
        return None
    return Copy(
        # The default exchange routes by queue name: to that endpoint's queue alone.
        Address("", f"{topology.EVENTS_DELIVER_QUEUE_PREFIX}{delivery.why.endpoint}"),
        message.body,
        type_name=BackendEvent.type_name(),
        message_id=delivery.event.id,
        headers={topology.HEADER_ATTEMPT: 1},
    )


def render(rows: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """``list``'s table rows (the caller adds the header)."""
    return [
        (
            row["reason"],
            row["status"],
            row["endpoint"] or "-",
            row["type"] or "-",
            row["user"] or "-",
            str(row["seq"]) if row["seq"] is not None else "-",
            row["id"] or "(unreadable body)",
        )
        for row in rows
    ]


def as_json(listing: Listing[ParkedDelivery], now: float) -> str:
    rows = [parked.row(now) for parked in listing.messages]
    total = listing.totals[topology.EVENTS_PARKED_QUEUE]
    return json.dumps({"total": total, "parked": rows}, indent=2)
