"""Meta's webhook body → normalized events. Pure: no I/O, no clock (the caller passes the time).

A body batches entries, each with changes; a ``messages`` change carries ``messages[]``,
``statuses[]`` and ``errors[]``. Every one of them becomes its own event, and so does each of a
``smb_message_echoes`` change's ``message_echoes[]`` (``MessageEchoed``: the business answered
from the WhatsApp Business app) and each template change (``templates``). Conversation
Routing's fields: a ``messaging_handovers`` notice is a ``ControlChanged``
(``ingress.handovers``), a ``standby`` change's ``messages[]`` are ``MessageReceived`` marked
``standby``. Changes of other fields (account, calls...) become ``ChangeReceived`` for
inspection; a body whose shape is not a WhatsApp webhook at all is ``Unclassified`` and kept
whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import from_json

from hiker.core import topology
from hiker.core.contracts import (
    ChangeReceived,
    Contract,
    MessageEchoed,
    MessageReceived,
    StatusError,
    StatusReceived,
    WebhookErrorReceived,
)
from hiker.core.graph_ids import PhoneNumberId
from hiker.core.identity import IDENTITY_CHANGES
from hiker.ingress.handovers import control_changes
from hiker.ingress.pricing import price_of
from hiker.ingress.routing_keys import routing_token
from hiker.ingress.templates import TEMPLATE_FIELDS, entry_time
from hiker.ingress.texts import message_reply_id, message_text, text_at

__all__ = [
    "MalformedBody",
    "Routed",
    "Unclassified",
    "message_reply_id",
    "message_text",
    "parse",
    "route",
]


class MalformedBody(ValueError):
    """The body is not JSON at all (answered 400)."""


class _Lenient(BaseModel):
    # Meta adds fields over time; unknown ones must never make a valid update unreadable.
    model_config = ConfigDict(extra="allow")


class _Metadata(_Lenient):
    # It becomes a Graph URL segment downstream: anything but digits is kept for inspection
    # (the change is unreadable), never published as a message to reply to.
    phone_number_id: PhoneNumberId
    display_phone_number: str | None = None


class _Contact(_Lenient):
    wa_id: str | None = None
    user_id: str | None = None
    parent_user_id: str | None = None
    profile: dict[str, Any] | None = None

    def profile_text(self, field: str) -> str | None:
        value = (self.profile or {}).get(field)
        return value if isinstance(value, str) else None


class _ErrorItem(_Lenient):
    code: int
    title: str | None = None
    message: str | None = None
    error_data: dict[str, Any] | None = None


def _amqp_short_string(value: str) -> str:
    # Ids travel as AMQP message and correlation ids: short strings of at most 255 bytes.
    if len(value.encode()) > 255:
        raise ValueError("longer than 255 bytes")
    return value


AmqpId = Annotated[str, AfterValidator(_amqp_short_string)]


class _Message(_Lenient):
    id: AmqpId
    from_: str | None = Field(default=None, alias="from")
    from_user_id: str | None = None
    from_parent_user_id: str | None = None
    timestamp: int
    type: str = "unknown"


class _Status(_Lenient):
    id: AmqpId
    status: str
    timestamp: int | None = None
    recipient_id: str | None = None
    recipient_user_id: str | None = None
    recipient_parent_user_id: str | None = None
    errors: list[_ErrorItem] = Field(default_factory=list)
    # What the send put there (Meta returns it on sent/delivered/read/failed), and the price.
    biz_opaque_callback_data: str | None = None
    pricing: object = None


class _MessagesValue(_Lenient):
    metadata: _Metadata
    contacts: list[_Contact] = Field(default_factory=list)
    messages: list[dict[str, Any]] = Field(default_factory=list)
    statuses: list[dict[str, Any]] = Field(default_factory=list)
    errors: list[dict[str, Any]] = Field(default_factory=list)


class _Change(_Lenient):
    field: str
    value: dict[str, Any]


class _Entry(_Lenient):
    id: str | None = None
    time: object = None
    changes: list[_Change] = Field(default_factory=list)


class _Body(_Lenient):
    object: str
    entry: list[_Entry] = Field(min_length=1)


@dataclass(frozen=True)
class Routed:
    """An event and the routing key it is published under."""

    routing_key: str
    event: Contract
    # The id that travels as the correlation id (the inbound wamid where there is one).
    correlation_id: str | None = None


@dataclass(frozen=True)
class Unclassified:
    """A signed, well-formed JSON body that is not a WhatsApp webhook we can read."""

    reason: str


def parse(body: bytes) -> Any:
    """Parse JSON once (pydantic-core, no Python json round trip); MalformedBody when it is not."""
    try:
        return from_json(body)
    except ValueError as exc:
        raise MalformedBody(str(exc)) from None


def route(document: Any, received_at: float) -> list[Routed] | Unclassified:
    """Every message, status, error and foreign change of ``document``, in body order."""
    try:
        body = _Body.model_validate(document)
    except ValidationError as exc:
        return Unclassified(reason=_first_error(exc))
    if body.object != "whatsapp_business_account":
        return Unclassified(reason=f"object is {body.object!r}")
    routed: list[Routed] = []
    for entry in body.entry:
        for change in entry.changes:
            if change.field in TEMPLATE_FIELDS:
                routed.append(_template(entry, change, received_at))
                continue
            if change.field not in _READ_FIELDS:
                routed.append(_foreign(entry.id, change, received_at))
                continue
            try:
                routed.extend(_READ_FIELDS[change.field](change.value, received_at))
            except ValidationError:
                # Kept whole for inspection; the batch's other changes still go through.
                unreadable = ChangeReceived(
                    entry_id=entry.id,
                    field=change.field,
                    value=change.value,
                    received_at=received_at,
                )
                routed.append(Routed(topology.RK_UNKNOWN, unreadable))
    return routed


def _foreign(entry_id: str | None, change: _Change, received_at: float) -> Routed:
    event = ChangeReceived(
        entry_id=entry_id, field=change.field, value=change.value, received_at=received_at
    )
    return Routed(f"{topology.RK_CHANGE_PREFIX}.{routing_token(change.field)}", event)


def _template(entry: _Entry, change: _Change, received_at: float) -> Routed:
    """A template's status, quality or category change; kept whole when unreadable."""
    at = entry_time(entry.time, received_at)
    try:
        event = TEMPLATE_FIELDS[change.field](change.value, entry.id, at, received_at)
    except ValidationError:
        return _foreign(entry.id, change, received_at)
    return Routed(f"{topology.RK_TEMPLATE_PREFIX}.{routing_token(change.field)}", event)


def _messages_change(
    raw_value: dict[str, Any], received_at: float, *, standby: bool = False
) -> list[Routed]:
    value = _MessagesValue.model_validate(raw_value)
    phone_number_id = value.metadata.phone_number_id
    routed: list[Routed] = []
    for raw in value.messages:
        message = _Message.model_validate(raw)
        contact = _contact_of(message, value.contacts)
        phone = message.from_ or contact.wa_id
        user_id = message.from_user_id or contact.user_id
        parent_user_id = message.from_parent_user_id or contact.parent_user_id
        changed = _identity_change(raw)
        if changed is not None:
            # The user changed number or id: the message belongs to the new ids (conversation
            # moves the one kept under the previous ids, ``system.previous_user_id``).
            phone = text_at(changed, "wa_id") or phone
            user_id = text_at(changed, "user_id") or user_id
            parent_user_id = text_at(changed, "parent_user_id") or parent_user_id
        # The BSUID first: it stays when the phone number stops appearing in webhooks.
        user = user_id or phone
        if user is None:
            raise ValidationError.from_exception_data(
                "message", [{"type": "missing", "loc": ("from",), "input": raw}]
            )
        event = MessageReceived(
            wamid=message.id,
            phone_number_id=phone_number_id,
            display_phone_number=value.metadata.display_phone_number,
            user=user,
            wa_id=phone,
            contact_name=contact.profile_text("name"),
            user_id=user_id,
            parent_user_id=parent_user_id,
            username=contact.profile_text("username"),
            message_type=message.type,
            text=message_text(raw),
            reply_id=message_reply_id(raw),
            timestamp=message.timestamp,
            received_at=received_at,
            raw=raw,
            standby=standby,
        )
        routed.append(
            Routed(f"{topology.RK_MESSAGE_PREFIX}.{routing_token(message.type)}", event, message.id)
        )
    for raw in value.statuses:
        status = _Status.model_validate(raw)
        status_event = StatusReceived(
            message_id=status.id,
            phone_number_id=phone_number_id,
            recipient_id=status.recipient_id,
            recipient_user_id=status.recipient_user_id,
            recipient_parent_user_id=status.recipient_parent_user_id,
            status=status.status,
            timestamp=status.timestamp,
            errors=tuple(
                StatusError(
                    code=e.code,
                    title=e.title,
                    message=e.message,
                    details=text_at(e.error_data, "details"),
                )
                for e in status.errors
            ),
            received_at=received_at,
            biz_opaque_callback_data=status.biz_opaque_callback_data,
            pricing=price_of(status.pricing),
        )
        routed.append(
            Routed(
                f"{topology.RK_STATUS_PREFIX}.{routing_token(status.status)}",
                status_event,
                status.id,
            )
        )
    for raw in value.errors:
        error = _ErrorItem.model_validate(raw)
        error_event = WebhookErrorReceived(
            phone_number_id=phone_number_id,
            code=error.code,
            title=error.title,
            message=error.message,
            received_at=received_at,
        )
        routed.append(Routed(topology.RK_ERROR, error_event))
    return routed


def _identity_change(raw: dict[str, Any]) -> dict[str, Any] | None:
    """The ``system`` object of a message that reports a change of the user's ids, or None."""
    system = raw.get("system") if raw.get("type") == "system" else None
    if isinstance(system, dict) and system.get("type") in IDENTITY_CHANGES:
        return system
    return None


def _contact_of(message: _Message, contacts: list[_Contact]) -> _Contact:
    """The ``contacts[]`` entry of the message's sender (by phone number or BSUID), or none."""
    for contact in contacts:
        if (message.from_ and contact.wa_id == message.from_) or (
            message.from_user_id and contact.user_id == message.from_user_id
        ):
            return contact
    # One message, one contact: Meta leaves ``from`` out for a BSUID-only user.
    if len(contacts) == 1 and not (contacts[0].wa_id and message.from_):
        return contacts[0]
    return _Contact()


class _Echo(_Lenient):
    id: AmqpId
    to: str = Field(min_length=1)
    timestamp: int
    type: str = "unknown"


class _EchoesValue(_Lenient):
    metadata: _Metadata
    message_echoes: list[dict[str, Any]] = Field(default_factory=list)


def _echoes_change(raw_value: dict[str, Any], received_at: float) -> list[Routed]:
    """``smb_message_echoes``: what the business sent from the WhatsApp Business app on a
    coexistence number, each echo ``{from, to, id, timestamp, type, <type>: {...}}``."""
    value = _EchoesValue.model_validate(raw_value)
    routed: list[Routed] = []
    for raw in value.message_echoes:
        echo = _Echo.model_validate(raw)
        # ``to`` is the number as the app had it (Meta's example has a "+"); conversations are
        # keyed by the digits Meta puts in ``from`` of a user's messages.
        user = echo.to.removeprefix("+") if echo.to[1:].isdigit() else echo.to
        event = MessageEchoed(
            wamid=echo.id,
            phone_number_id=value.metadata.phone_number_id,
            user=user,
            message_type=echo.type,
            text=message_text(raw),
            timestamp=echo.timestamp,
            received_at=received_at,
        )
        routed.append(
            Routed(f"{topology.RK_ECHO_PREFIX}.{routing_token(echo.type)}", event, echo.id)
        )
    return routed


def _handovers_change(raw_value: dict[str, Any], received_at: float) -> list[Routed]:
    return [
        Routed(f"{topology.RK_CONTROL_PREFIX}.{event.control}", event)
        for event in control_changes(raw_value, received_at)
    ]


# A ``standby`` change's parts read as a ``messages`` change's; the rest of it (the other app's
# echoes and statuses, in shapes Meta's stored pages do not show) is kept for inspection.
_STANDBY_READ: Final = ("messaging_product", "metadata", "contacts", "messages")


def _standby_change(raw_value: dict[str, Any], received_at: float) -> list[Routed]:
    """``standby`` (Conversation Routing): activity of a thread another app owns, copied to
    this one for context. The user's messages are published as such, marked ``standby``:
    recorded, never answered (answering would take the thread from its owner)."""
    read: dict[str, Any] = {key: raw_value[key] for key in _STANDBY_READ if key in raw_value}
    routed = _messages_change(read, received_at, standby=True)
    if any(key not in _STANDBY_READ for key in raw_value):
        kept = ChangeReceived(field="standby", value=raw_value, received_at=received_at)
        routed.append(Routed(f"{topology.RK_CHANGE_PREFIX}.standby", kept))
    return routed


# The change fields read into events of their own; the others are kept for inspection.
_READ_FIELDS: Final = {
    "messages": _messages_change,
    "smb_message_echoes": _echoes_change,
    "messaging_handovers": _handovers_change,
    "standby": _standby_change,
}


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "body"
    return f"{where}: {error['msg']}"
