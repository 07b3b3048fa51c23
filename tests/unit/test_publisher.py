"""The bundler's memory of destinations: bounded whatever routing keys payloads name."""

from __future__ import annotations

from typing import Any

from hiker.core.contracts import WebhookErrorReceived
from hiker.core.publisher import Bundler, Destination


async def test_destinations_quiet_for_longer_than_the_linger_are_forgotten() -> None:
    published: list[str] = []

    async def publish(exchange: str, routing_key: str, body: bytes, **_: Any) -> None:
        published.append(routing_key)

    bundler = Bundler(publish, linger_seconds=0.0)
    event = WebhookErrorReceived(phone_number_id="1", code=1, received_at=1.0)
    for n in range(5000):  # a routing key per value a payload ever named
        await bundler.publish(Destination("hiker.inbound", f"message.kind{n}", "E"), event)
    assert len(published) == 5000
    assert len(bundler._last_left) <= 1024  # the bound under test (hence the peek)
