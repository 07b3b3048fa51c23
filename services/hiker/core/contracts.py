"""What travels over the broker: events (past tense, facts) and commands (imperative, requests).

Every payload is a pydantic model serialised as JSON; the AMQP ``type`` property carries the
model's name so that a consumer can refuse what it does not understand instead of guessing.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Contract(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def type_name(cls) -> str:
        return cls.__name__


class MessageReceived(Contract):
    """A user sent the business a message (any type: text, image, button reply, ...)."""

    wamid: str
    phone_number_id: str
    display_phone_number: str | None = None
    # The conversation's user: ``from`` or, when Meta sends only a business-scoped id,
    # ``from_user_id``.
    user: str
    wa_id: str | None = None
    contact_name: str | None = None
    message_type: str
    # The human-readable text where the type has one (text body, button or list reply title).
    text: str | None = None
    timestamp: int = Field(description="Meta's send time, epoch seconds")
    received_at: float = Field(description="ingress receipt time, epoch seconds")
    raw: dict[str, Any] = Field(default_factory=dict, description="the message as Meta sent it")


class StatusError(Contract):
    code: int
    title: str | None = None
    message: str | None = None


class StatusReceived(Contract):
    """Meta reported the fate of a message the business sent (sent, delivered, read, failed...)."""

    message_id: str
    phone_number_id: str
    recipient_id: str | None = None
    status: str
    timestamp: int | None = None
    errors: tuple[StatusError, ...] = ()
    received_at: float


class WebhookErrorReceived(Contract):
    """Meta reported an error in ``value.errors`` (not tied to one sent message)."""

    phone_number_id: str | None = None
    code: int
    title: str | None = None
    message: str | None = None
    received_at: float


class ChangeReceived(Contract):
    """A signed change of a field the pipeline does not act on (templates, account, calls...).

    Kept whole in the inspection queue so an operator can see what Meta sent.
    """

    entry_id: str | None = None
    field: str
    value: dict[str, Any]
    received_at: float


class IdleTimerStarted(Contract):
    """A conversation went quiet after ``wamid``; when this message expires the user is idle."""

    phone_number_id: str
    user: str
    wamid: str
    scheduled_at: float
    due_at: float
    # Meta's time of the message: the 24-hour customer service window closes a day after it.
    message_timestamp: int | None = None


class MessageTemplate(Contract):
    """An approved template, sendable outside the 24-hour customer service window."""

    name: str
    language: str


class SendMessage(Contract):
    """Send a text (or, outside the service window, a template) to a user via the Graph API."""

    # Sender calls Graph at most once per key, whatever the redeliveries upstream.
    idempotency_key: str
    phone_number_id: str
    to: str
    text: str | None = None
    template: MessageTemplate | None = None
    kind: Literal["reply", "followup"]
    correlation_id: str
    # When the webhook that caused this send reached ingress; drives end-to-end latency.
    origin_received_at: float | None = None

    @model_validator(mode="after")
    def _text_or_template(self) -> SendMessage:
        if (self.text is None) == (self.template is None):
            raise ValueError("exactly one of text and template is required")
        return self


InboundEvent = MessageReceived | StatusReceived | WebhookErrorReceived
