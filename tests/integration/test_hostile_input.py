"""The public webhook under specific hostile inputs, against an in-process ingress and the real
broker: signature variants, nesting, sizes, encodings, ids and types that once made a 500 or
reached another Graph path, and a replayed body (harmless). The properties that hold for any
input are in test_hostile_properties.
"""

from __future__ import annotations

import gzip
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest
from aio_pika import DeliveryMode
from multidict import CIMultiDict

from hiker.core import topology
from hiker.core.contracts import SendMessage
from hiker.core.signature import SIGNATURE_HEADER, sign
from hiker.tools.parked.queue import list_parked
from hiker.tools.simulate import encode, messages_change, text_message, webhook_body
from tests.integration.conftest import (
    PHONE_NUMBER_ID,
    Pipeline,
    PipelineFactory,
    metric_value,
    queue_depth,
    queued_contracts,
)
from tests.integration.webhooks import (
    BODY_LIMIT,
    SECRET,
    hello_body,
    ingress,
    poster,
    published,
    wait_for_depth,
)
from tests.support import wait_for_metric

pytestmark = pytest.mark.integration
__all__ = ["ingress"]  # the fixture, used by name


# --- specific hostile inputs ---------------------------------------------------------------


async def test_signature_header_variants(ingress: Pipeline, amqp_url: str) -> None:
    post = poster(ingress)
    body = hello_body()
    valid = sign(SECRET, body)
    wrong = sign(b"another secret", body)

    def headers(*values: str) -> CIMultiDict[str]:
        return CIMultiDict((SIGNATURE_HEADER, value) for value in values)

    refused = [
        (headers(), 401),
        (headers(""), 401),
        (headers(wrong), 403),  # computed with another secret
        (headers(wrong, valid), 403),  # the first header is the one read
        (headers(valid.removeprefix("sha256=")), 403),
        (headers("sha1=" + valid.removeprefix("sha256=")), 403),
        (headers(valid.upper()), 403),
        (headers(valid[:-1]), 403),
        (headers(valid + "00"), 403),
        (headers("sha256=" + "é" * 64), 403),
        (headers("sha256=" + "0" * 4096), 403),
    ]
    for sent, expected in refused:
        assert await post(body, sent) == expected, list(sent.values())
    assert await published(amqp_url) == (0, 0)
    # Spaces around a valid digest are tolerated, as Meta's own samples sometimes carry them.
    assert await post(body, headers(f"  {valid} ")) == 200
    assert await wait_for_depth(amqp_url, topology.CONVERSATION_INBOUND_QUEUE, 1) == 1


async def test_deep_nesting_is_refused_as_malformed(ingress: Pipeline, amqp_url: str) -> None:
    post = poster(ingress)
    depth = 10_000
    for body in (
        b"[" * depth + b"]" * depth,
        b'{"a":' * depth + b"1" + b"}" * depth,
        b'{"object":"whatsapp_business_account","entry":' + b"[" * depth + b"]" * depth + b"}",
    ):
        assert await post(body, {SIGNATURE_HEADER: sign(SECRET, body)}) == 400
        assert await post(body, {}) == 401
    # Nesting within the parser's limit is readable: kept for inspection, not a crash.
    nested: Any = "bottom"
    for _ in range(150):
        nested = [nested]
    change = {"field": "account_update", "value": {"deep": nested}}
    assert await ingress.post(webhook_body(change)) == 200
    assert await wait_for_depth(amqp_url, topology.INSPECT_QUEUE, 1) == 1
    assert await queue_depth(amqp_url, topology.CONVERSATION_INBOUND_QUEUE) == 0


async def test_bodies_at_and_over_the_size_limit(ingress: Pipeline, amqp_url: str) -> None:
    post = poster(ingress)
    template = encode(webhook_body(messages_change([text_message("15550009998", "PAD")])))
    padding = BODY_LIMIT - len(template) + len(b"PAD") - 1
    under = template.replace(b"PAD", b"x" * padding)
    assert len(under) == BODY_LIMIT - 1
    assert await post(under, {SIGNATURE_HEADER: sign(SECRET, under)}) == 200
    assert await wait_for_depth(amqp_url, topology.CONVERSATION_INBOUND_QUEUE, 1) == 1

    over = template.replace(b"PAD", b"x" * (padding + 2))
    assert await post(over, {SIGNATURE_HEADER: sign(SECRET, over)}) == 413

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"x" * (BODY_LIMIT // 2)

    # Without a Content-Length the limit still holds, counted as the body streams in.
    assert await post(chunks(), {SIGNATURE_HEADER: "sha256=00"}) == 413
    assert await queue_depth(amqp_url, topology.CONVERSATION_INBOUND_QUEUE) == 1


async def test_a_batch_of_1000_updates_publishes_every_one(
    ingress: Pipeline, amqp_url: str
) -> None:
    users = [f"1555{n:07d}" for n in range(1000)]
    body = encode(webhook_body(messages_change([text_message(u, "hello") for u in users])))
    started = time.monotonic()
    assert await ingress.post(body) == 200
    assert time.monotonic() - started < 5
    # 200 is answered only after every confirm: the events are all there already (in bundles).
    queued = await queued_contracts(amqp_url, topology.CONVERSATION_INBOUND_QUEUE)
    assert sorted(event["user"] for event in queued) == users
    metrics = await ingress.metrics("ingress-ops")
    assert metric_value(metrics, "hiker_events_published_total", kind="message") == 1000


async def test_non_utf8_and_unusual_content_types(ingress: Pipeline, amqp_url: str) -> None:
    post = poster(ingress)
    for garbage in (b"\xff\xfe\x00\x01", b'{"object": "\xff\xfe"}', "{}".encode("utf-16")):
        assert await post(garbage, {SIGNATURE_HEADER: sign(SECRET, garbage)}) == 400
        assert await post(garbage, {"Content-Type": "application/json"}) == 401
    body = hello_body()
    signature = sign(SECRET, body)
    # The signature, not the declared type, decides: Meta signs the bytes it sends.
    for content_type in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json; charset=latin-1",
        "",
    ):
        assert await post(body, {"Content-Type": content_type}) == 401
        assert await post(body, {"Content-Type": content_type, SIGNATURE_HEADER: signature}) == 200
    assert await wait_for_depth(amqp_url, topology.CONVERSATION_INBOUND_QUEUE, 5) == 5


async def test_compressed_bodies_cannot_bypass_the_limit(ingress: Pipeline, amqp_url: str) -> None:
    post = poster(ingress)
    bomb = gzip.compress(b"\x00" * (64 * BODY_LIMIT))  # 64 MiB of zeros in ~64 KiB
    for _ in range(5):
        status = await post(bomb, {"Content-Encoding": "gzip", SIGNATURE_HEADER: "sha256=00"})
        # Ingress never inflates a body: the compressed bytes are checked and refused as they are
        # (test_stalled_uploads measures ingress's memory under bombs and large bodies).
        assert status == 403
    assert await published(amqp_url) == (0, 0)


async def test_a_body_that_is_not_the_gzip_it_claims_is_not_a_server_error(
    ingress: Pipeline,
) -> None:
    post = poster(ingress)
    assert await post(b"not gzip", {"Content-Encoding": "gzip"}) in {400, 401}


async def test_hostile_handshake_queries_are_refused(ingress: Pipeline) -> None:
    url = ingress.webhook_url
    for query in (
        "",
        "hub.mode=subscribe",
        "hub.mode=subscribe&hub.verify_token=%ff%fe&hub.challenge=1",
        "hub.mode=subscribe&hub.verify_token=&hub.challenge=1",
        "hub.mode=subscribe&hub.verify_token=x&hub.verify_token=y&hub.challenge=1",
        "hub.mode=unsubscribe&hub.verify_token=%00&hub.challenge=" + "9" * 4000,
        "%zz=%&&&=",
    ):
        async with ingress.session.get(f"{url}?{query}") as response:
            assert response.status == 403, query


async def test_a_replayed_signed_body_replies_once(make_pipeline: PipelineFactory) -> None:
    pipeline = await make_pipeline(HIKER_IDLE_TIMEOUT_SECONDS="60")
    user = "15550009997"
    body = hello_body(user)
    for _ in range(3):  # captured once, posted again and again
        assert await pipeline.post(body) == 200
    assert await pipeline.wait_for_texts(user, 1) == ["hello to you too"]
    await wait_for_metric(
        lambda: pipeline.metrics("conversation"), "hiker_duplicates_dropped_total", 2
    )
    assert await pipeline.texts(user) == ["hello to you too"]


async def test_an_oversized_message_id_is_not_a_server_error(
    ingress: Pipeline, amqp_url: str
) -> None:
    message = text_message("15550009996", "hello", wamid="wamid." + "A" * 300)
    assert await ingress.post(webhook_body(messages_change([message]))) in {200, 400}


async def test_a_message_type_of_letters_of_another_script_is_published_not_a_500(
    ingress: Pipeline, amqp_url: str
) -> None:
    # 64 letters of 4 bytes each: a routing key past AMQP's 255-byte short string before.
    for kind in ("\U00020000" * 64, "ñandú"):
        message = text_message("15550009993", "hello")
        message["type"] = kind
        assert await ingress.post(webhook_body(messages_change([message]))) == 200
    queued = await queued_contracts(amqp_url, topology.CONVERSATION_INBOUND_QUEUE)
    assert [event["message_type"] for event in queued] == ["\U00020000" * 64, "ñandú"]


async def graph_requests(pipeline: Pipeline) -> list[tuple[str, str]]:
    async with pipeline.session.get(pipeline.url("graph", "/_mock/requests")) as response:
        return [(r["method"], r["path"]) for r in await response.json()]


HOSTILE_NUMBER_IDS = ("106540352242922/deregister?", f"../{PHONE_NUMBER_ID}")


async def test_phone_number_ids_of_a_signed_webhook_reach_no_other_graph_path(
    make_pipeline: PipelineFactory, amqp_url: str
) -> None:
    pipeline = await make_pipeline()
    for number in HOSTILE_NUMBER_IDS:
        change = messages_change([text_message("15550009992", "hello")], phone_number_id=number)
        assert await pipeline.post(webhook_body(change)) == 200
    # Kept for inspection (signed, so Meta's or someone's with the secret), not answered.
    assert await wait_for_depth(amqp_url, topology.INSPECT_QUEUE, 2) == 2
    await pipeline.say("15550009991", "hello")
    assert await pipeline.wait_for_texts("15550009991", 1) == ["hello to you too"]
    assert {path for _, path in await graph_requests(pipeline)} == {
        f"/v23.0/{PHONE_NUMBER_ID}/messages"
    }
    assert await pipeline.texts("15550009992") == []


async def test_a_send_command_naming_another_graph_path_is_parked_never_called(
    make_pipeline: PipelineFactory, amqp_url: str
) -> None:
    # What ingress now refuses may still arrive from elsewhere (the api, a queue filled before).
    pipeline = await make_pipeline(services=("graph", "sender"))
    for number in HOSTILE_NUMBER_IDS:
        await publish_send(amqp_url, number, "15550009990")
    assert await wait_for_depth(amqp_url, topology.SENDER_PARKED_QUEUE, 2) == 2
    listing = await list_parked(amqp_url)
    assert [parked.row(time.time())["graph_status"] for parked in listing.messages] == [
        "bad_phone_number_id"
    ] * 2
    assert await graph_requests(pipeline) == []


async def publish_send(amqp_url: str, phone_number_id: str, to: str) -> None:
    """What conversation (or the api) publishes: one send command, through the commands exchange."""
    command = SendMessage(
        idempotency_key=f"reply:{uuid.uuid4().hex}",
        phone_number_id=phone_number_id,
        to=to,
        text="hello to you too",
        kind="reply",
        correlation_id=f"wamid.TEST{uuid.uuid4().hex}",
    )
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(topology.COMMANDS_EXCHANGE)
        message = aio_pika.Message(
            command.to_bytes(), type=command.type_name(), delivery_mode=DeliveryMode.PERSISTENT
        )
        await exchange.publish(message, topology.RK_SEND, mandatory=True)
    finally:
        await connection.close()
