"""The ingest decision with a fake publisher: what is published, and what is answered."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from prometheus_client import CollectorRegistry

from hiker.core.bundles import BUNDLE_HEADER
from hiker.core.errors import PublishFailed
from hiker.core.publisher import Bundler
from hiker.core.signature import sign
from hiker.ingress.ingestor import Outcome, WebhookIngestor
from hiker.ingress.metrics import IngressMetrics
from hiker.tools.simulate import encode, messages_change, text_message, webhook_body

SECRET = b"secret"


class FakePublisher:
    def __init__(self, fail_on: int | None = None) -> None:
        self.published: list[tuple[str, str, bytes]] = []
        self.headers: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.fail_on = fail_on

    async def __call__(
        self, exchange: str, routing_key: str, body: bytes, *, headers: Any = None, **_: Any
    ) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await asyncio.sleep(0.01)  # a confirm's round trip
        self.in_flight -= 1
        if self.fail_on is not None and len(self.published) == self.fail_on:
            raise PublishFailed("nack")
        self.published.append((exchange, routing_key, body))
        self.headers.append(dict(headers or {}))


def ingestor(publisher: FakePublisher, linger_seconds: float = 0.0) -> WebhookIngestor:
    return WebhookIngestor(
        app_secrets=[SECRET],
        events=Bundler(publisher, linger_seconds=linger_seconds),
        publish=publisher,
        metrics=IngressMetrics(CollectorRegistry()),
    )


async def test_the_updates_of_a_webhook_travel_as_one_bundle() -> None:
    publisher = FakePublisher()
    messages = [text_message(f"1555{i:07d}", "hello") for i in range(50)]
    body = encode(webhook_body(messages_change(messages)))
    outcome = await ingestor(publisher).ingest(body, sign(SECRET, body))
    assert outcome is Outcome.ACCEPTED
    assert [(e, rk) for e, rk, _ in publisher.published] == [("hiker.inbound", "message.text")]
    assert json.loads(publisher.published[0][2])[49]["wamid"] == messages[49]["id"]
    assert publisher.headers[0][BUNDLE_HEADER] == 50


async def test_webhooks_arriving_within_the_linger_share_a_bundle() -> None:
    publisher = FakePublisher()
    ingest = ingestor(publisher, linger_seconds=0.05)
    bodies = [
        encode(webhook_body(messages_change([text_message(f"1555{i:07d}", "hello")])))
        for i in range(5)
    ]
    outcomes = await asyncio.gather(*(ingest.ingest(b, sign(SECRET, b)) for b in bodies))
    assert outcomes == [Outcome.ACCEPTED] * 5
    assert len(publisher.published) == 1
    assert len(json.loads(publisher.published[0][2])) == 5


async def test_any_unconfirmed_update_makes_the_whole_webhook_503() -> None:
    publisher = FakePublisher(fail_on=1)
    change = messages_change([text_message("15550000001", "hello")])
    # A message and a status: two routing keys, two bundles; the second is refused.
    change["value"]["statuses"] = [{"id": "wamid.S", "status": "read", "recipient_id": "1"}]
    body = encode(webhook_body(change))
    assert await ingestor(publisher).ingest(body, sign(SECRET, body)) is Outcome.UNAVAILABLE


async def test_nothing_unsigned_is_published() -> None:
    publisher = FakePublisher()
    body = encode(webhook_body(messages_change([text_message("1", "hello")])))
    assert await ingestor(publisher).ingest(body, None) is Outcome.MISSING_SIGNATURE
    assert await ingestor(publisher).ingest(body, "sha256=00") is Outcome.BAD_SIGNATURE
    assert publisher.published == []


async def test_routing_keys_never_seen_before_do_not_grow_the_ingestor() -> None:
    # Every new message type or status is a routing key of its own; Meta may send any.
    publisher = FakePublisher()
    ingest = ingestor(publisher)
    for n in range(300):
        message = text_message("15550000001", "hello")
        message["type"] = f"kind{n}"
        body = encode(webhook_body(messages_change([message])))
        assert await ingest.ingest(body, sign(SECRET, body)) is Outcome.ACCEPTED
    assert len(publisher.published) == 300
    assert publisher.published[-1][1] == "message.kind299"
    assert len(ingest._destinations) <= 256  # the cache's bound (the test's reason to peek)


async def test_a_body_signed_with_any_of_the_app_secrets_is_accepted() -> None:
    publisher = FakePublisher()
    ingest = WebhookIngestor(
        app_secrets=[b"first app", b"second app"],
        events=Bundler(publisher, linger_seconds=0),
        publish=publisher,
        metrics=IngressMetrics(CollectorRegistry()),
    )
    body = encode(webhook_body(messages_change([text_message("15550000001", "hello")])))
    assert await ingest.ingest(body, sign(b"second app", body)) is Outcome.ACCEPTED
    assert await ingest.ingest(body, sign(b"first app", body)) is Outcome.ACCEPTED
    assert await ingest.ingest(body, sign(b"third app", body)) is Outcome.BAD_SIGNATURE
    assert len(publisher.published) == 2
