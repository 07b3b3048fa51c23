"""Why a send command was parked, as the AMQP headers beside it: written by the sender, read by
``hiker parked`` (and by hand, so reading never fails)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hiker.core import topology
from hiker.core.headers import header_epoch_seconds, header_json, header_text


class ParkedHeaders(BaseModel):
    """Why a send command was parked: the AMQP headers the sender writes and ``hiker parked`` reads.

    The command itself stays the message body; these travel beside it, so that a parked send is
    replayed exactly as it was asked for.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    attempt: int = Field(ge=1, description="the Graph attempt that led to parking")
    # "permanent", "retries_exhausted" or "in_doubt" (the sender died during the Graph call).
    reason: str
    graph_status: str = Field(description='the HTTP status, or "timeout", "unknown", ...')
    graph_code: str = Field(description='Graph\'s error code, or "unknown"')
    graph_error: dict[str, Any] | None = Field(default=None, description="Graph's error object")
    parked_at: float | None = Field(default=None, description="epoch seconds")

    def to_headers(self) -> dict[str, Any]:
        return {
            topology.HEADER_ATTEMPT: self.attempt,
            topology.HEADER_PARKED_REASON: self.reason,
            topology.HEADER_GRAPH_STATUS: self.graph_status,
            topology.HEADER_GRAPH_CODE: self.graph_code,
            topology.HEADER_GRAPH_ERROR: json.dumps(self.graph_error or {}),
            # A string: AMQP tables carry a float in single precision, too coarse for a time.
            **(
                {topology.HEADER_PARKED_AT: f"{self.parked_at:.3f}"}
                if self.parked_at is not None
                else {}
            ),
        }

    @classmethod
    def from_headers(cls, headers: Mapping[str, Any]) -> ParkedHeaders:
        """Never fails: what is missing or unreadable (a message parked by hand, or by another
        version) gets a placeholder (reason "unknown", code "none", attempt 1), since a person
        still has to see the message."""
        attempt = headers.get(topology.HEADER_ATTEMPT)
        return cls(
            attempt=attempt if type(attempt) is int and attempt >= 1 else 1,
            reason=header_text(headers.get(topology.HEADER_PARKED_REASON)) or "unknown",
            graph_status=header_text(headers.get(topology.HEADER_GRAPH_STATUS)) or "none",
            graph_code=header_text(headers.get(topology.HEADER_GRAPH_CODE)) or "none",
            graph_error=header_json(headers.get(topology.HEADER_GRAPH_ERROR)),
            parked_at=header_epoch_seconds(headers.get(topology.HEADER_PARKED_AT)),
        )
