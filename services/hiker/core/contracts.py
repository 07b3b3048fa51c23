"""What travels over the broker: events (past tense, facts) and commands (imperative, requests).

Every payload is a pydantic model serialised as JSON; the AMQP ``type`` property carries the
model's name so that a consumer can refuse what it does not understand instead of guessing.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hiker.core.actions import Action


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
    # The conversation's user: the business-scoped user id (BSUID) whenever the webhook
    # carries one, else the phone number (``from``).
    user: str
    # The phone number, when Meta sent it (``from`` / ``contacts[].wa_id``): replies go there.
    wa_id: str | None = None
    contact_name: str | None = None
    # The BSUID (``from_user_id`` / ``contacts[].user_id``), the parent BSUID and the user's
    # WhatsApp username (``contacts[].profile.username``), when Meta sent them.
    user_id: str | None = None
    parent_user_id: str | None = None
    username: str | None = None
    message_type: str
    # The human-readable text where the type has one (text body, button or list reply title).
    text: str | None = None
    # The id of the button or list row the user tapped (``button`` / ``interactive`` replies).
    reply_id: str | None = None
    timestamp: int = Field(description="Meta's send time, epoch seconds")
    received_at: float = Field(description="ingress receipt time, epoch seconds")
    raw: dict[str, Any] = Field(default_factory=dict, description="the message as Meta sent it")
    # Came on the ``standby`` field (Conversation Routing): another app owns the thread, this is
    # a copy for context. Recorded and published, never answered.
    standby: bool = False


class StatusError(Contract):
    code: int
    title: str | None = None
    message: str | None = None
    # Meta's ``error_data.details``: the longer explanation, when Meta gave one.
    details: str | None = None


class StatusPricing(Contract):
    """A status's ``pricing`` object, as Meta sends it (status webhook reference; per-message
    pricing since July 2025): ``pricing_model`` ``PMP`` (or ``CBP`` before), ``type``
    ``regular`` (charged), ``free_customer_service`` or ``free_entry_point``, and the
    template's ``category`` (marketing, utility, authentication, ...). ``billable`` is
    deprecated by Meta but still sent: kept when present."""

    billable: bool | None = None
    pricing_model: str | None = None
    type: str | None = None
    category: str | None = None

    @property
    def charged(self) -> bool:
        """Whether Meta charges for the message: ``type`` says so under per-message pricing,
        ``billable`` under conversation-based pricing (which has no ``type``)."""
        if self.type is not None:
            return self.type == "regular"
        return bool(self.billable)


class StatusReceived(Contract):
    """Meta reported the fate of a message the business sent (sent, delivered, read, failed...)."""

    message_id: str
    phone_number_id: str
    recipient_id: str | None = None
    # The recipient's BSUID and parent BSUID, when Meta sent them (``recipient_user_id``...).
    recipient_user_id: str | None = None
    recipient_parent_user_id: str | None = None
    status: str
    timestamp: int | None = None
    errors: tuple[StatusError, ...] = ()
    received_at: float
    # What the send put in ``biz_opaque_callback_data``: Hiker's send id, the action's own
    # idempotency key (``SendMessage.action_key``), so a status joins its send even when it
    # arrives before Graph's answer was recorded.
    biz_opaque_callback_data: str | None = None
    # What Meta charges for the message, when the status carries ``pricing``.
    pricing: StatusPricing | None = None


class WebhookErrorReceived(Contract):
    """Meta reported an error in ``value.errors`` (not tied to one sent message)."""

    phone_number_id: str | None = None
    code: int
    title: str | None = None
    message: str | None = None
    received_at: float


class TemplateStatusChanged(Contract):
    """Meta changed a message template's status (``message_template_status_update``):
    APPROVED, REJECTED, PAUSED, DISABLED, ARCHIVED, ... with Meta's ``reason``."""

    # The WhatsApp Business Account the template belongs to (the webhook's ``entry.id``).
    waba_id: str | None = None
    template_id: str
    name: str
    language: str
    event: str
    reason: str | None = None
    category: str | None = None
    # ``other_info.title`` / ``other_info.description`` (a pause's explanation, ...).
    info: str | None = None
    # Meta's time of the change (``entry.time``), else when Hiker received it.
    changed_at: float
    received_at: float


class TemplateQualityChanged(Contract):
    """Meta re-rated a template's quality (``message_template_quality_update``)."""

    waba_id: str | None = None
    template_id: str
    name: str
    language: str
    previous_quality: str | None = None
    new_quality: str
    changed_at: float
    received_at: float


class TemplateCategoryChanged(Contract):
    """Meta changed (or will change) a template's category (``template_category_update``):
    what it is charged as changes with it."""

    waba_id: str | None = None
    template_id: str
    name: str
    language: str
    previous_category: str | None = None
    new_category: str
    # Set when Meta announces a change still to come (``correct_category``).
    correct_category: str | None = None
    changed_at: float
    received_at: float


TemplateEvent = TemplateStatusChanged | TemplateQualityChanged | TemplateCategoryChanged


class ChangeReceived(Contract):
    """A signed change of a field the pipeline does not act on (templates, account, calls...).

    Kept whole in the inspection queue so an operator can see what Meta sent.
    """

    entry_id: str | None = None
    field: str
    value: dict[str, Any]
    received_at: float


class TimerScheduled(Contract):
    """A timer set after the message ``wamid``: the idle follow-up (when this message expires the
    user is idle) or, with ``reminder``, a reminder a responder or bot asked for."""

    phone_number_id: str
    user: str
    wamid: str
    scheduled_at: float
    due_at: float
    # Meta's time of the message: the 24-hour customer service window closes a day after it.
    message_timestamp: int | None = None
    # A reminder a responder asked for (``Remind.key``), with its data; None: the follow-up.
    reminder: str | None = None
    data: dict[str, Any] | None = None
    # A reminder that fires even when the user wrote after ``wamid``.
    keep: bool = False
    # The user's phone number when ``wamid`` carried one (``user`` is then their BSUID): the
    # follow-up goes there, as the reply did.
    wa_id: str | None = None


class AITurnScheduled(Contract):
    """An AI turn set after the user's message ``wamid``: when it comes out of its wait queue
    and ``wamid`` is still the user's latest message waiting for the model, every message
    waiting is answered in one call (``conversation.ai``). ``attempt`` counts the model's
    failures so far; ``first_attempt_at`` is when the model was first asked (give-up)."""

    phone_number_id: str
    user: str
    wamid: str
    scheduled_at: float
    # Meta's time of the message: the 24-hour customer service window closes a day after it.
    message_timestamp: int | None = None
    # The user's phone number when ``wamid`` carried one: the reply goes there.
    wa_id: str | None = None
    attempt: int = Field(default=0, ge=0)
    first_attempt_at: float | None = None


class SendMessage(Contract):
    """Send a reply's actions to a user via the Graph API, one after the other, in order.

    Each action is sent at most once, under its own key (``action_key``), whatever the
    redeliveries upstream; the next one only once Graph accepted the previous one. A retry or a
    park carries what is left of the reply (``remainder``), so the order holds across them.
    """

    idempotency_key: str
    phone_number_id: str
    # The conversation's user (a BSUID or a phone number): history and pacing are kept by it.
    to: str
    # The user's phone number when their message carried one: Graph is sent that instead.
    wa_id: str | None = None
    actions: tuple[Action, ...] = Field(min_length=1)
    # Each action's own idempotency key, when given (else derived: ``action_key``).
    keys: tuple[str, ...] = ()
    # How many actions of the reply came before ``actions[0]`` (sent, or dropped).
    start: int = Field(default=0, ge=0)
    # "broadcast": a recipient of a broadcast (``hiker api``); "marketing": the same, of a
    # marketing template, sent to Meta's Marketing Messages endpoint.
    kind: Literal["reply", "followup", "receipt", "api", "broadcast", "marketing"]
    correlation_id: str
    # When the webhook that caused this send reached ingress; drives end-to-end latency.
    origin_received_at: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _before_actions(cls, data: Any) -> Any:
        # A command published before replies were actions carries one text or one template.
        if isinstance(data, dict) and "actions" not in data:
            data = dict(data)
            text, template = data.pop("text", None), data.pop("template", None)
            if (text is None) == (template is None):
                raise ValueError("exactly one of text and template is required")
            data["actions"] = (
                [{"type": "text", "body": text}]
                if text is not None
                else [{"type": "template", **dict(template)}]
            )
        return data

    @model_validator(mode="after")
    def _a_key_per_action(self) -> SendMessage:
        if self.keys and len(self.keys) != len(self.actions):
            raise ValueError("keys, when given, name every action")
        return self

    @property
    def address(self) -> str:
        """Whom Graph is asked to send to: the phone number when known, else ``to`` (a BSUID
        goes out in Graph's ``recipient``, a phone number in its ``to``)."""
        return self.wa_id or self.to

    def action_key(self, index: int) -> str:
        """The idempotency key of ``actions[index]``: its own, or the command's and its
        position in the reply (the first action's is the command's own)."""
        if self.keys:
            return self.keys[index]
        position = self.start + index
        return self.idempotency_key if position == 0 else f"{self.idempotency_key}#{position}"

    def remainder(self, index: int) -> SendMessage:
        """The actions from ``index`` on, as a command of their own (to retry or to park)."""
        return self.model_copy(
            update={
                "actions": self.actions[index:],
                "keys": self.keys[index:],
                "start": self.start + index,
            }
        )


class MessageSent(Contract):
    """Graph accepted one action of a send command: the message the user will see, and its id.

    Status webhooks (``StatusReceived``) then name that id as ``message_id``.
    """

    idempotency_key: str  # the action's own key (``SendMessage.action_key``)
    phone_number_id: str
    to: str
    kind: str
    correlation_id: str
    action_type: str
    # What a person would read of it (a text's body, a caption, an interactive body).
    text: str | None = None
    graph_message_id: str | None = None
    sent_at: float


class SendParked(Contract):
    """A send (what was left of it) was parked for a person: why, and Graph's error if any."""

    idempotency_key: str  # the key of the first action that was not sent
    phone_number_id: str
    to: str
    kind: str
    correlation_id: str
    reason: str
    graph_status: str
    graph_code: str
    graph_error: dict[str, Any] | None = None
    parked_at: float
    # The action that was not sent, as in ``MessageSent`` (absent from older senders' events).
    action_type: str | None = None
    text: str | None = None


InboundEvent = MessageReceived | StatusReceived | WebhookErrorReceived


class MessageEchoed(Contract):
    """The business answered a user from the WhatsApp Business app on a coexistence number
    (Meta's ``smb_message_echoes``): a message a person wrote, which hands them the conversation."""

    wamid: str
    phone_number_id: str
    # The user it was sent to (the echo's ``to``): the conversation's user.
    user: str
    message_type: str
    text: str | None = None
    # Meta's time of the echo (epoch seconds), and when Hiker received it.
    timestamp: int
    received_at: float


class ControlChanged(Contract):
    """Meta's Conversation Routing moved a user's thread (``messaging_handovers``): another app
    took it from this one (``taken``), or the thread was passed to this one (``passed``).

    Meta sends no notice when an owner releases a thread: the user's next message on the
    ``messages`` field is the sign that it is back (``conversation.routing``).
    """

    phone_number_id: str
    # The conversation's user, keyed as ``MessageReceived.user`` (the BSUID first).
    user: str
    control: Literal["taken", "passed"]
    # The free-form ``metadata`` the app that moved the thread gave, when it gave one.
    metadata: str | None = None
    received_at: float
    raw: dict[str, Any] = Field(default_factory=dict, description="the change as Meta sent it")


class OwnerChanged(Contract):
    """Who answers a conversation changed: a person took it until ``until``, or the bot got it
    back (``until`` None). Published on the outcomes exchange for ``hiker events``."""

    phone_number_id: str
    user: str
    owner: Literal["bot", "human"]
    until: float | None = None
    reason: str | None = None
    # The way in: api, action, echo or routing (``hiker_handoffs_total{reason}``).
    way: str
    changed_at: float
