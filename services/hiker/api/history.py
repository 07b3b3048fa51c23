"""What the api records, as values: each event's record, and how a message's status follows
from the statuses Meta reported (pure; the repository stores and reads these)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from hiker.core.contracts import (
    MessageEchoed,
    MessageReceived,
    MessageSent,
    SendParked,
    StatusReceived,
    WebhookErrorReceived,
)

Direction = Literal["in", "out"]

# A message's status is the furthest one reported; a failure is final whatever came before.
STATUS_RANK: Final = {"accepted": 0, "sent": 1, "delivered": 2, "read": 3, "failed": 4}
# What a parked send's row says its type is: the parked event does not carry the action.
UNKNOWN_TYPE: Final = "unknown"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(seconds: float) -> int:
    """Epoch seconds → the integer microseconds the database keeps."""
    return round(seconds * 1_000_000)


def iso(at_us: int) -> str:
    """Microseconds since the epoch → ISO 8601 in UTC (``2026-12-01T10:00:00.123456Z``)."""
    return (_EPOCH + timedelta(microseconds=at_us)).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Inbound:
    wamid: str
    phone_number_id: str
    user: str
    type: str
    text: str | None
    at_us: int
    name: str | None = None
    # The user's business-scoped user id, phone number and username, when Meta sent them.
    user_id: str | None = None
    wa_id: str | None = None
    username: str | None = None


@dataclass(frozen=True)
class Outbound:
    """A message the business sends: accepted by the api, or accepted by Graph (``wamid``)."""

    idempotency_key: str
    phone_number_id: str
    user: str
    kind: str
    type: str
    text: str | None
    at_us: int
    wamid: str | None = None
    send_id: str | None = None
    request_hash: str | None = None


@dataclass(frozen=True)
class Parked:
    idempotency_key: str
    phone_number_id: str
    user: str
    kind: str
    at_us: int
    error: dict[str, Any]
    type: str = UNKNOWN_TYPE
    text: str | None = None


@dataclass(frozen=True)
class Status:
    wamid: str
    status: str
    at_us: int
    error: dict[str, Any] | None = None
    # The send's key, as it came back in ``biz_opaque_callback_data``.
    callback_data: str | None = None


@dataclass(frozen=True)
class Price:
    """What Meta charges for the message ``wamid`` (a status's ``pricing``)."""

    wamid: str
    phone_number_id: str
    pricing_model: str | None
    type: str | None
    category: str | None
    billable: bool | None
    charged: bool
    at_us: int

    def view(self) -> dict[str, Any]:
        """As the history shows it (Meta's names, and whether it is charged)."""
        return {
            "pricing_model": self.pricing_model,
            "type": self.type,
            "category": self.category,
            "billable": self.billable,
            "charged": self.charged,
        }


@dataclass(frozen=True)
class WebhookError:
    phone_number_id: str
    code: int
    title: str | None
    message: str | None
    at_us: int


def storable(text: str | None) -> str | None:
    """``text`` as the database can keep it: NUL, which PostgreSQL's text refuses, becomes
    U+FFFD (a record refused would be held, then poisoned, and lost to the history)."""
    return text.replace("\x00", "\ufffd") if text is not None else None


def inbound(event: MessageReceived) -> Inbound:
    # When Hiker received it, not Meta's timestamp: whole seconds only, which would sort the
    # messages of one second (and the replies to them) in no particular order.
    return Inbound(
        wamid=event.wamid,
        phone_number_id=event.phone_number_id,
        user=event.user,
        type=event.message_type,
        text=storable(event.text),
        at_us=to_us(event.received_at),
        name=storable(event.contact_name),
        user_id=event.user_id,
        wa_id=event.wa_id,
        username=storable(event.username),
    )


def sent(event: MessageSent) -> Outbound:
    return Outbound(
        idempotency_key=event.idempotency_key,
        phone_number_id=event.phone_number_id,
        user=event.to,
        kind=event.kind,
        type=event.action_type,
        text=storable(event.text),
        at_us=to_us(event.sent_at),
        wamid=event.graph_message_id,
    )


# The kind of an outbound message a person wrote in the WhatsApp Business app (an echo).
PERSON_KIND = "person"


def echoed(event: MessageEchoed) -> Outbound:
    """An echo, recorded as the business's outbound message under its wamid (a redelivery
    writes nothing more: the idempotency key is the wamid's)."""
    return Outbound(
        idempotency_key=f"echo:{event.wamid}",
        phone_number_id=event.phone_number_id,
        user=event.user,
        kind=PERSON_KIND,
        type=event.message_type,
        text=storable(event.text),
        at_us=to_us(event.received_at),
        wamid=event.wamid,
    )


def parked(event: SendParked) -> Parked:
    digits = event.graph_code.isascii() and event.graph_code.isdigit()
    code = int(event.graph_code) if digits and len(event.graph_code) < 10 else None
    graph = event.graph_error or {}
    message = graph.get("message")
    return Parked(
        idempotency_key=event.idempotency_key,
        phone_number_id=event.phone_number_id,
        user=event.to,
        kind=event.kind,
        at_us=to_us(event.parked_at),
        type=event.action_type or UNKNOWN_TYPE,
        text=storable(event.text),
        error={
            "code": code,
            "title": f"parked: {event.reason}",
            "message": message if isinstance(message, str) else None,
            "graph_status": event.graph_status,
            "error_data": graph or None,
        },
    )


# Meta's limit on ``biz_opaque_callback_data``, and the column's: what is longer was not ours.
CALLBACK_DATA_MAX: Final = 512


def status(event: StatusReceived) -> Status:
    first = event.errors[0] if event.errors else None
    error = (
        {
            "code": first.code,
            "title": storable(first.title),
            "message": storable(first.message),
            "details": storable(first.details),
        }
        if first is not None
        else None
    )
    at = event.timestamp if event.timestamp else event.received_at
    data = event.biz_opaque_callback_data
    return Status(
        wamid=event.message_id,
        status=event.status,
        at_us=to_us(at),
        error=error,
        callback_data=data if data and len(data) <= CALLBACK_DATA_MAX else None,
    )


def price(event: StatusReceived) -> Price | None:
    """The price the status reports, if it carries ``pricing``."""
    pricing = event.pricing
    if pricing is None:
        return None
    at = event.timestamp if event.timestamp else event.received_at
    return Price(
        wamid=event.message_id,
        phone_number_id=event.phone_number_id,
        pricing_model=pricing.pricing_model,
        type=pricing.type,
        category=pricing.category,
        billable=pricing.billable,
        charged=pricing.charged,
        at_us=to_us(at),
    )


def webhook_error(event: WebhookErrorReceived) -> WebhookError:
    return WebhookError(
        phone_number_id=event.phone_number_id or "",
        code=event.code,
        title=storable(event.title),
        message=storable(event.message),
        at_us=to_us(event.received_at),
    )


@dataclass(frozen=True)
class StatusAt:
    status: str
    at_us: int
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class KeptMedium:
    """An inbound medium the api kept: its bytes are in the media store under ``sha256``."""

    media_id: str
    wamid: str
    phone_number_id: str
    sha256: str
    mime_type: str | None
    size: int
    stored_at_us: int


@dataclass(frozen=True)
class MessageRow:
    """A message as stored, with the statuses reported for its wamid (oldest first)."""

    id: int
    phone_number_id: str
    user: str
    direction: Direction
    wamid: str | None
    send_id: str | None
    kind: str | None
    type: str
    text: str | None
    at_us: int
    parked: dict[str, Any] | None
    statuses: tuple[StatusAt, ...] = field(default=())
    # The medium the api kept of it (``api.media``), when it kept one.
    media: KeptMedium | None = None
    # What Meta charges for it, once a status said (``Price.view``).
    pricing: dict[str, Any] | None = None

    @property
    def public_id(self) -> str | None:
        """What the history calls it: Meta's id, or the api's while Graph has not taken it."""
        return self.wamid or self.send_id

    def current(self) -> tuple[str, dict[str, Any] | None]:
        """Its status and the error that explains a failure."""
        return current_status(self.direction, self.statuses, self.parked)


def current_status(
    direction: Direction, reported: Iterable[StatusAt], parked: Mapping[str, Any] | None
) -> tuple[str, dict[str, Any] | None]:
    if direction == "in":
        return "received", None
    if parked is not None:
        return "failed", dict(parked)
    best, error = "accepted", None
    for entry in reported:
        rank = STATUS_RANK.get(entry.status)
        if rank is not None and rank > STATUS_RANK[best]:
            best, error = entry.status, entry.error
    return best, error if best == "failed" else None


@dataclass(frozen=True)
class ConversationRow:
    phone_number_id: str
    user: str
    name: str | None
    last_at_us: int
    last_direction: Direction
    last_type: str
    last_text: str | None
    message_count: int
    user_id: str | None = None
    wa_id: str | None = None
    username: str | None = None


@dataclass(frozen=True)
class KeyState:
    """Where an idempotency key of ``POST /v1/messages`` stands (``db.keys``)."""

    send_id: str
    request_hash: str
    # The attempt holding the key, or the last that did.
    holder: str
    lease_until_us: int
    # 1 for the first request; more once retries took it over after a crash.
    attempts: int
    # The broker confirmed the command: a repeat publishes nothing.
    published: bool
