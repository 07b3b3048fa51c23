"""What the HTTP API answers, as models: the JSON bodies and, through them, the OpenAPI
document's schemas (``openapi``), so the two cannot drift apart."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hiker.api.history import ConversationRow, MessageRow, iso
from hiker.core.ownership import Ownership


class _View(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StatusEntry(_View):
    """One status Meta reported for an outbound message."""

    status: str = Field(description="sent, delivered, read, failed (or another Meta status)")
    at: str = Field(description="ISO 8601, UTC")
    error: dict[str, Any] | None = Field(
        default=None, description="a failed status: Meta's error (code, title, message, details)"
    )


class MediaItem(_View):
    """An inbound medium the api kept (HIKER_MEDIA_STORE): its bytes at ``url``."""

    id: str = Field(description="Meta's media id")
    mime_type: str | None
    sha256: str = Field(description="hex digest of the bytes")
    size: int = Field(description="bytes")
    url: str = Field(description="GET it with a token of the read scope: the bytes, typed")


class MessageItem(_View):
    """One message of a conversation, either direction, with its statuses."""

    id: str | None = Field(
        description="Meta's message id (wamid); for a send Graph has not taken yet, the id "
        "POST /v1/messages answered with"
    )
    direction: Literal["in", "out"]
    type: str = Field(description="text, image, button, interactive, template, ...")
    text: str | None = Field(description="what a person reads of it, where it has a text")
    status: Literal["received", "accepted", "sent", "delivered", "read", "failed"]
    error: dict[str, Any] | None = Field(
        description="why it failed: Meta's error of the failed status (code, title, message, "
        "details) or the reason it was parked"
    )
    at: str = Field(description="ISO 8601, UTC: when Hiker received it, or when it was sent")
    kind: str | None = Field(
        description="outbound: reply, followup, api, or person (sent from the WhatsApp "
        "Business app)"
    )
    send_id: str | None = Field(description="outbound through POST /v1/messages: its id")
    statuses: list[StatusEntry] = Field(description="every status reported, oldest first")
    media: MediaItem | None = Field(
        default=None, description="inbound: the medium kept of it, when HIKER_MEDIA_STORE is set"
    )
    pricing: dict[str, Any] | None = Field(
        default=None,
        description="outbound: what Meta charges for it, from its statuses' pricing "
        "(pricing_model, type: regular / free_customer_service / free_entry_point, category, "
        "billable, and charged: whether type is regular)",
    )

    @classmethod
    def of(cls, row: MessageRow) -> MessageItem:
        status, error = row.current()
        return cls(
            id=row.public_id,
            direction=row.direction,
            type=row.type,
            text=row.text,
            status=status,  # type: ignore[arg-type]
            error=error,
            at=iso(row.at_us),
            kind=row.kind,
            send_id=row.send_id,
            statuses=[
                StatusEntry(status=s.status, at=iso(s.at_us), error=s.error) for s in row.statuses
            ],
            pricing=row.pricing,
            media=(
                MediaItem(
                    id=row.media.media_id,
                    mime_type=row.media.mime_type,
                    sha256=row.media.sha256,
                    size=row.media.size,
                    url=f"/v1/media/{row.media.media_id}",
                )
                if row.media is not None
                else None
            ),
        )


class MessagePage(_View):
    data: list[MessageItem] = Field(description="latest first")
    next_cursor: str | None = Field(description="the next page's cursor; null on the last")


class LastMessage(_View):
    direction: Literal["in", "out"]
    type: str
    text: str | None


class ConversationItem(_View):
    phone_number_id: str
    user: str
    name: str | None = Field(description="the user's profile name, as Meta last sent it")
    user_id: str | None = Field(
        default=None, description="the user's business-scoped user id (BSUID), if Meta sent it"
    )
    wa_id: str | None = Field(default=None, description="the user's phone number, if shared")
    username: str | None = Field(default=None, description="the user's WhatsApp username")
    last_message_at: str = Field(description="ISO 8601, UTC")
    last_message: LastMessage
    message_count: int
    owner: Literal["bot", "human"] = Field(
        default="bot", description="who answers now: the bot, or a person (a handoff)"
    )
    owner_until: str | None = Field(
        default=None, description="ISO 8601, UTC: when a person's ownership ends by itself"
    )
    handoff_reason: str | None = Field(default=None, description="why it was handed over")

    def owned(self, ownership: Ownership, now: float) -> ConversationItem:
        """This item with who owns the conversation at ``now`` (``core.ownership``)."""
        if not ownership.human(now) or ownership.until is None:
            return self
        return self.model_copy(
            update={
                "owner": "human",
                "owner_until": iso(round(ownership.until * 1_000_000)),
                "handoff_reason": ownership.reason,
            }
        )

    @classmethod
    def of(cls, row: ConversationRow) -> ConversationItem:
        return cls(
            phone_number_id=row.phone_number_id,
            user=row.user,
            name=row.name,
            user_id=row.user_id,
            wa_id=row.wa_id,
            username=row.username,
            last_message_at=iso(row.last_at_us),
            last_message=LastMessage(
                direction=row.last_direction, type=row.last_type, text=row.last_text
            ),
            message_count=row.message_count,
        )


class ConversationPage(_View):
    data: list[ConversationItem] = Field(description="latest message first")
    next_cursor: str | None = Field(description="the next page's cursor; null on the last")


class Accepted(_View):
    id: str = Field(description="the send's id: the same for a repeated Idempotency-Key")
    status: Literal["accepted"] = "accepted"


class FieldProblem(_View):
    field: str = Field(description="where, e.g. buttons.options")
    message: str


class ErrorData(_View):
    details: str
    fields: list[FieldProblem] = Field(default_factory=list)


class ErrorBody(_View):
    message: str
    type: str
    code: int
    error_data: ErrorData | None = None


class Problem(_View):
    """An error, shaped as the Graph API shapes its own."""

    error: ErrorBody
