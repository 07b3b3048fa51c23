"""``hiker events``: where events go, what signs them, how long they are retried."""

from __future__ import annotations

from typing import ClassVar

from pydantic import (
    Field,
    SecretStr,
    field_validator,
)

from hiker.core.endpoints import Endpoint, parse_endpoints
from hiker.core.settings.base import CommonSettings


class EventsSettings(CommonSettings):
    """``hiker events``: where events for a backend go, how they are signed, how long retried."""

    metrics_port: int = Field(default=9106, ge=1, le=65535)
    # Comma-separated endpoints (core.endpoints): HTTPS, or plain HTTP on loopback. A secret,
    # since a URL may carry a token in its query.
    events_urls: SecretStr
    # Signs every body (X-Hiker-Signature-256: sha256=HMAC-SHA256(secret, body)).
    events_secret: SecretStr
    # How long an event is retried (5xx, 429, timeouts, refused) before it is parked.
    events_retry_hours: float = Field(default=24.0, gt=0, le=24 * 7)
    # How long one POST may take before it counts as a timeout (and is retried).
    events_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # POSTs under way at once per endpoint (the prefetch of its queue's consumer).
    events_concurrency: int = Field(default=16, ge=1, le=1000)
    # Prefetch of the queue where events get their id and seq, before they go to each endpoint.
    prefetch: int = Field(default=64, ge=1, le=10_000)

    secret_fields: ClassVar[tuple[str, ...]] = ("events_secret",)

    @field_validator("events_urls")
    @classmethod
    def _endpoints(cls, value: SecretStr) -> SecretStr:
        parse_endpoints(value.get_secret_value())
        return value

    def endpoints(self) -> tuple[Endpoint, ...]:
        return parse_endpoints(self.events_urls.get_secret_value())
