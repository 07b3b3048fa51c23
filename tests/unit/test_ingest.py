"""The ingest decision with a fake publisher: what is published, and what is answered."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import CollectorRegistry

from hiker.core.broker import PublishFailed
from hiker.core.signature import sign
from hiker.ingress.handlers import Outcome, WebhookIngestor
from hiker.ingress.metrics import IngressMetrics
from hiker.tools.simulate import encode, messages_change, text_message, webhook_body

SECRET = b"secret"


class FakePublisher:
    def __init__(self, fail_on: int | None = None) -> None:
        self.published: list[tuple[str, str, bytes]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.fail_on = fail_on

    async def __call__(self, exchange: str, routing_key: str, body: bytes, **_: Any) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await asyncio.sleep(0.01)  # a confirm's round trip
        self.in_flight -= 1
        if self.fail_on is not None and len(self.published) == self.fail_on:
            raise PublishFailed("nack")
        self.published.append((exchange, routing_key, body))


def ingestor(publisher: FakePublisher) -> WebhookIngestor:
    return WebhookIngestor(
        app_secret=SECRET, publish=publisher, metrics=IngressMetrics(CollectorRegistry())
    )


async def test_confirms_of_a_batch_are_awaited_together() -> None:
    publisher = FakePublisher()
    messages = [text_message(f"1555{i:07d}", "hello") for i in range(50)]
    body = encode(webhook_body(messages_change(messages)))
    outcome = await ingestor(publisher).ingest(body, sign(SECRET, body))
    assert outcome is Outcome.ACCEPTED
    assert len(publisher.published) == 50
    assert publisher.max_in_flight == 50


async def test_any_unconfirmed_update_makes_the_whole_webhook_503() -> None:
    publisher = FakePublisher(fail_on=1)
    messages = [text_message(f"1555{i:07d}", "hello") for i in range(3)]
    body = encode(webhook_body(messages_change(messages)))
    assert await ingestor(publisher).ingest(body, sign(SECRET, body)) is Outcome.UNAVAILABLE


async def test_nothing_unsigned_is_published() -> None:
    publisher = FakePublisher()
    body = encode(webhook_body(messages_change([text_message("1", "hello")])))
    assert await ingestor(publisher).ingest(body, None) is Outcome.MISSING_SIGNATURE
    assert await ingestor(publisher).ingest(body, "sha256=00") is Outcome.BAD_SIGNATURE
    assert publisher.published == []
