"""A parked send as an operator sees it: why it was parked, and what it would send."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError

from hiker.core.contracts import SendMessage
from hiker.core.observability import mask_phone, mask_text
from hiker.core.parked_headers import ParkedHeaders


@dataclass(frozen=True)
class ParkedSend:
    command: SendMessage | None  # None when the body is not a readable SendMessage
    headers: ParkedHeaders

    @classmethod
    def from_message(cls, message: AbstractIncomingMessage) -> ParkedSend:
        try:
            command: SendMessage | None = SendMessage.model_validate_json(message.body)
        except ValidationError:
            command = None
        return cls(command, ParkedHeaders.from_headers(message.headers or {}))

    @property
    def reason(self) -> str:
        return self.headers.reason

    @property
    def graph_code(self) -> str:
        return self.headers.graph_code

    @property
    def attempt(self) -> int:
        return self.headers.attempt

    def matches(self, reasons: Collection[str]) -> bool:
        """No filter matches all; else the Graph code (``190``) or the reason (``permanent``)."""
        return not reasons or self.graph_code in reasons or self.reason in reasons

    def row(self, now: float) -> dict[str, Any]:
        """What ``list`` shows: masked recipient, never the text sent to the user."""
        command, parked_at = self.command, self.headers.parked_at
        return {
            # Clamped: the clocks of the sender and of this machine may differ a little.
            "age_seconds": (round(max(0.0, now - parked_at), 1) if parked_at is not None else None),
            "reason": self.reason,
            "graph_code": self.graph_code,
            "graph_status": self.headers.graph_status,
            "graph_message": _graph_message(self.headers.graph_error),
            "attempt": self.attempt,
            "kind": command.kind if command else None,
            "to": mask_phone(command.to) if command else None,
            "phone_number_id": command.phone_number_id if command else None,
            "idempotency_key": command.idempotency_key if command else None,
            "correlation_id": command.correlation_id if command else None,
            "readable": command is not None,
        }


def _graph_message(error: dict[str, Any] | None) -> str:
    message = error.get("message") if error else None
    # Graph's details may quote the recipient; the operator needs the gist, not the number.
    return mask_text(str(message)) if message else ""


@dataclass
class ParkedReplay:
    """What a replay of parked sends did."""

    replayed: int = 0
    already_sent: int = 0  # a replayed copy was sent before; the obsolete parked copy was acked
    left_parked: int = 0  # not matching, unreadable, or held by another run
    unreadable: int = 0
