"""What a backend receives: the event envelope, each type's data, and ids that never change. Pure.

An event is built from the fact it reports (an inbound message, a status, a parked send) and
gets its ``seq`` once, when it is stamped (``events.sequence``); from then on its bytes travel
unchanged through every retry, redelivery and replay, so a receiver sees one ``id`` and one
``seq`` per event however often it arrives.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from hiker.core.contracts import Contract, MessageReceived, SendParked, StatusReceived

EventType = Literal["message.received", "message.status", "conversation.owner", "send.parked"]
EVENT_TYPES: Final[tuple[EventType, ...]] = (
    "message.received",
    "message.status",
    "conversation.owner",
    "send.parked",
)
SIGNATURE_HEADER: Final = "X-Hiker-Signature-256"


class BackendEvent(Contract):
    """The JSON body POSTed to each endpoint, exactly as it is sent."""

    id: str
    type: EventType
    at: str  # ISO 8601, UTC: when the fact happened (Meta's time, or Hiker's)
    phone_number_id: str
    user: str
    seq: int
    data: dict[str, Any]


class _Data(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MessageData(_Data):
    """``message.received``: what the user sent, readable (no raw webhook)."""

    wamid: str
    type: str
    text: str | None
    reply_id: str | None
    wa_id: str | None
    contact_name: str | None
    display_phone_number: str | None
    timestamp: int
    received_at: float


class StatusErrorData(_Data):
    code: int
    title: str | None
    message: str | None
    # Meta's ``error_data.details``, when it gave one.
    details: str | None = None


class PricingData(_Data):
    """What Meta charges for the message (the status's ``pricing``)."""

    pricing_model: str | None
    type: str | None = Field(description="regular, free_customer_service, free_entry_point")
    category: str | None = Field(description="marketing, utility, authentication, service, ...")
    billable: bool | None
    charged: bool = Field(description="whether Meta charges for it (type regular)")


class StatusData(_Data):
    """``message.status``: the fate of a message the business sent; a ``failed`` status
    carries Meta's errors (why it never arrived), a priced one what it costs."""

    message_id: str
    status: str
    recipient_id: str | None
    timestamp: int | None
    errors: list[StatusErrorData]
    received_at: float
    # The send's own key (``biz_opaque_callback_data``): for a send through ``POST
    # /v1/messages``, ``api:<id>`` with the id it was answered with.
    callback_data: str | None = None
    pricing: PricingData | None = None


class ParkedData(_Data):
    """``send.parked``: a send a person must look at, and why."""

    idempotency_key: str
    to: str
    kind: str
    reason: str
    graph_status: str
    graph_code: str
    graph_error: dict[str, Any] | None
    action_type: str | None
    text: str | None
    correlation_id: str
    parked_at: float


class OwnerData(_Data):
    """``conversation.owner``: who answers the conversation now (bot or human), and until when.

    From ``OwnerChanged``, published where a handoff is written (``core.ownership``).
    """

    owner: Literal["bot", "human"]
    until: str | None
    reason: str | None
    changed_at: float


@dataclass(frozen=True)
class Unstamped:
    """An event before its ``seq``: everything a stamp does not decide."""

    id: str
    type: EventType
    at: str
    phone_number_id: str
    user: str
    data: _Data

    def stamped(self, seq: int) -> BackendEvent:
        return BackendEvent(
            id=self.id,
            type=self.type,
            at=self.at,
            phone_number_id=self.phone_number_id,
            user=self.user,
            seq=seq,
            data=self.data.model_dump(mode="json"),
        )


def event_id(type_: EventType, *facts: str) -> str:
    """An id derived from the fact alone (never from when or how often it was seen), so that
    retries, redeliveries and Meta's own duplicates all carry the same one."""
    digest = hashlib.sha256("\n".join((type_, *facts)).encode()).hexdigest()
    return f"evt_{digest[:32]}"


def iso(epoch_seconds: float) -> str:
    """``1767225600.5`` → ``2026-01-01T00:00:00.500Z``."""
    moment = datetime.fromtimestamp(epoch_seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def from_message(message: MessageReceived) -> Unstamped:
    return Unstamped(
        id=event_id("message.received", message.phone_number_id, message.wamid),
        type="message.received",
        at=iso(message.timestamp),
        phone_number_id=message.phone_number_id,
        user=message.user,
        data=MessageData(
            wamid=message.wamid,
            type=message.message_type,
            text=message.text,
            reply_id=message.reply_id,
            wa_id=message.wa_id,
            contact_name=message.contact_name,
            display_phone_number=message.display_phone_number,
            timestamp=message.timestamp,
            received_at=message.received_at,
        ),
    )


def from_status(status: StatusReceived) -> Unstamped | None:
    """None for a status that names no user: it belongs to no conversation."""
    if not status.recipient_id:
        return None
    return Unstamped(
        id=event_id("message.status", status.phone_number_id, status.message_id, status.status),
        type="message.status",
        at=iso(status.timestamp if status.timestamp is not None else status.received_at),
        phone_number_id=status.phone_number_id,
        user=status.recipient_id,
        data=StatusData(
            message_id=status.message_id,
            status=status.status,
            recipient_id=status.recipient_id,
            timestamp=status.timestamp,
            errors=[
                StatusErrorData(
                    code=error.code, title=error.title, message=error.message, details=error.details
                )
                for error in status.errors
            ],
            received_at=status.received_at,
            callback_data=status.biz_opaque_callback_data,
            pricing=(
                PricingData(
                    pricing_model=price.pricing_model,
                    type=price.type,
                    category=price.category,
                    billable=price.billable,
                    charged=price.charged,
                )
                if (price := status.pricing) is not None
                else None
            ),
        ),
    )


def from_parked(parked: SendParked) -> Unstamped:
    # Parked again after a replay is a new fact: the time of parking tells the two apart.
    return Unstamped(
        id=event_id(
            "send.parked",
            parked.phone_number_id,
            parked.idempotency_key,
            f"{parked.parked_at:.3f}",
        ),
        type="send.parked",
        at=iso(parked.parked_at),
        phone_number_id=parked.phone_number_id,
        user=parked.to,
        data=ParkedData(
            idempotency_key=parked.idempotency_key,
            to=parked.to,
            kind=parked.kind,
            reason=parked.reason,
            graph_status=parked.graph_status,
            graph_code=parked.graph_code,
            graph_error=parked.graph_error,
            action_type=parked.action_type,
            text=parked.text,
            correlation_id=parked.correlation_id,
            parked_at=parked.parked_at,
        ),
    )


def owner_changed(
    phone_number_id: str,
    user: str,
    owner: Literal["bot", "human"],
    *,
    changed_at: float,
    until: float | None = None,
    reason: str | None = None,
) -> Unstamped:
    """A ``conversation.owner`` event (from ``OwnerChanged``)."""
    return Unstamped(
        id=event_id("conversation.owner", phone_number_id, user, owner, f"{changed_at:.3f}"),
        type="conversation.owner",
        at=iso(changed_at),
        phone_number_id=phone_number_id,
        user=user,
        data=OwnerData(
            owner=owner,
            until=iso(until) if until is not None else None,
            reason=reason,
            changed_at=changed_at,
        ),
    )
