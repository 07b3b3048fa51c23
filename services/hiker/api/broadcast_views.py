"""What the broadcast and opt-out routes answer, as models (and the OpenAPI schemas)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from hiker.api.db.broadcasts import BroadcastRow, RecipientRow
from hiker.api.db.opt_outs import OptOutRow
from hiker.api.history import iso

# Every count a broadcast answers with, zero or not: a client reads each without guessing.
STATUSES = (
    "queued",
    "sending",
    "accepted",
    "sent",
    "delivered",
    "read",
    "failed",
    "parked",
    "skipped",
    "cancelled",
)


class _View(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BroadcastAccepted(_View):
    id: str = Field(description="the broadcast's id: the same for a repeated Idempotency-Key")
    recipients: int = Field(description="users it will be sent to (each once)")
    duplicates: int = Field(description="users named more than once, sent once")


class Counts(_View):
    queued: int = Field(description="waiting for their turn (the rate, the daily limit)")
    sending: int = Field(description="handed to the sender; Graph has not answered yet")
    accepted: int = Field(description="Graph accepted the send; no status from Meta yet")
    sent: int
    delivered: int
    read: int
    failed: int = Field(description="Meta reported failed (by code: failed_by_code)")
    parked: int = Field(description="the sender parked the send (hiker parked list)")
    skipped: int = Field(description="opted out before their turn")
    cancelled: int = Field(description="still queued when the broadcast was cancelled")


class BroadcastView(_View):
    id: str
    name: str
    phone_number_id: str
    template: str = Field(description="the template's name")
    marketing: bool = Field(description="sent through Meta's Marketing Messages API")
    state: str = Field(description="running, paused, cancelled, done (all handed or skipped)")
    start_at: str = Field(description="ISO 8601, UTC")
    created_at: str = Field(description="ISO 8601, UTC")
    total: int
    counts: Counts
    failed_by_code: dict[str, int] = Field(description="failed recipients by Meta's error code")

    @classmethod
    def of(cls, row: BroadcastRow) -> BroadcastView:
        return cls(
            id=row.id,
            name=row.name,
            phone_number_id=row.phone_number_id,
            template=str(row.template.get("name", "")),
            marketing=row.kind == "marketing",
            state=row.state,
            start_at=iso(row.start_at_us),
            created_at=iso(row.created_at_us),
            total=row.total,
            counts=Counts(**{status: row.counts.get(status, 0) for status in STATUSES}),
            failed_by_code=row.failed_by_code,
        )


class StateView(_View):
    id: str
    state: str


class RecipientItem(_View):
    to: str
    status: str
    error_code: int | None = Field(description="Meta's code of a failed or parked send")

    @classmethod
    def of(cls, row: RecipientRow) -> RecipientItem:
        return cls(to=row.to, status=row.status, error_code=row.error_code)


class RecipientPage(_View):
    data: list[RecipientItem]
    next_cursor: str | None


class OptOutItem(_View):
    phone_number_id: str
    user: str
    word: str = Field(description="what the user wrote")
    at: str = Field(description="when Hiker received it, ISO 8601, UTC")

    @classmethod
    def of(cls, row: OptOutRow) -> OptOutItem:
        return cls(
            phone_number_id=row.phone_number_id, user=row.user, word=row.word, at=iso(row.at_us)
        )


class OptOutPage(_View):
    data: list[OptOutItem]
    next_cursor: str | None
