"""The pipeline end to end against the real RabbitMQ and Redis: what a bot operator relies on."""

from __future__ import annotations

import asyncio
import json

import aio_pika
import pytest

from hiker.core import topology
from hiker.core.signature import SIGNATURE_HEADER, sign
from hiker.tools.simulate import encode, messages_change, text_message, webhook_body
from tests.integration.conftest import (
    APP_SECRET,
    VERIFY_TOKEN,
    PipelineFactory,
    metric_value,
    queue_depth,
)
from tests.support import take_all, wait_for_metric

pytestmark = pytest.mark.integration

FOLLOWUP = "are you there"


async def test_hello_gets_a_reply_and_one_followup(make_pipeline: PipelineFactory) -> None:
    pipeline = await make_pipeline()
    await pipeline.say("15550000001", "  HeLLo ")
    assert await pipeline.wait_for_texts("15550000001", 1) == ["hello to you too"]
    assert await pipeline.wait_for_texts("15550000001", 2) == ["hello to you too", FOLLOWUP]
    await asyncio.sleep(2.0)  # longer than the idle timeout: no second follow-up appears
    assert await pipeline.texts("15550000001") == ["hello to you too", FOLLOWUP]
    conversation = await pipeline.metrics("conversation")
    assert metric_value(conversation, "hiker_timers_scheduled_total") == 1
    assert metric_value(conversation, "hiker_followups_emitted_total", form="text") == 1
    sender = await pipeline.metrics("sender")
    assert metric_value(sender, "hiker_messages_sent_total", kind="reply") == 1
    assert metric_value(sender, "hiker_messages_sent_total", kind="followup") == 1
    assert metric_value(sender, "hiker_end_to_end_latency_seconds_count") == 1


async def test_message_during_wait_moves_the_followup(make_pipeline: PipelineFactory) -> None:
    pipeline = await make_pipeline(HIKER_IDLE_TIMEOUT_SECONDS="2")
    user = "15550000002"
    await pipeline.say(user, "hello")
    await pipeline.wait_for_texts(user, 1)
    await asyncio.sleep(1.2)
    await pipeline.say(user, "still here")  # no rule matches: no reply, but the timer moves
    await asyncio.sleep(1.2)  # past the first timer's due time, before the second one's
    assert await pipeline.texts(user) == ["hello to you too"]
    assert await pipeline.wait_for_texts(user, 2) == ["hello to you too", FOLLOWUP]
    await asyncio.sleep(2.5)
    assert await pipeline.texts(user) == ["hello to you too", FOLLOWUP]
    conversation = await pipeline.metrics("conversation")
    assert metric_value(conversation, "hiker_timers_superseded_total") == 1
    assert metric_value(conversation, "hiker_followups_emitted_total", form="text") == 1


async def test_duplicate_delivery_does_not_reply_twice(make_pipeline: PipelineFactory) -> None:
    pipeline = await make_pipeline(HIKER_IDLE_TIMEOUT_SECONDS="30")
    user = "15550000003"
    wamid = await pipeline.say(user, "hello")
    await pipeline.say(user, "hello", wamid=wamid)  # Meta redelivers the same message
    await pipeline.wait_for_texts(user, 1)
    await wait_for_metric(
        lambda: pipeline.metrics("conversation"), "hiker_duplicates_dropped_total", 1
    )
    assert await pipeline.texts(user) == ["hello to you too"]
    conversation = await pipeline.metrics("conversation")
    assert metric_value(conversation, "hiker_timers_scheduled_total") == 1


async def test_batch_of_entries_and_messages_is_fully_processed(
    make_pipeline: PipelineFactory,
) -> None:
    pipeline = await make_pipeline(HIKER_IDLE_TIMEOUT_SECONDS="30")
    users = [f"1555000010{i}" for i in range(6)]
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": f"entry-{n}",
                "changes": [
                    messages_change([text_message(users[2 * n], "hello")]),
                    messages_change([text_message(users[2 * n + 1], "echo batch " + str(n))]),
                ],
            }
            for n in range(3)
        ],
    }
    assert await pipeline.post(body) == 200
    for n in range(3):
        assert await pipeline.wait_for_texts(users[2 * n], 1) == ["hello to you too"]
        assert await pipeline.wait_for_texts(users[2 * n + 1], 1) == [f"batch {n}"]
    ingress = await pipeline.metrics("ingress-ops")
    assert metric_value(ingress, "hiker_events_published_total", kind="message") == 6


async def test_status_webhook_sends_nothing_and_moves_no_timer(
    make_pipeline: PipelineFactory,
) -> None:
    pipeline = await make_pipeline()
    user = "15550000004"
    statuses = [
        {"id": "wamid.OUT1", "status": s, "timestamp": "1700000000", "recipient_id": user}
        for s in ("sent", "delivered", "read")
    ]
    failed = {
        "id": "wamid.OUT2",
        "status": "failed",
        "timestamp": "1700000001",
        "recipient_id": user,
        "errors": [{"code": 131047, "title": "Re-engagement message"}],
    }
    assert await pipeline.post(webhook_body(messages_change(statuses=[*statuses, failed]))) == 200
    await asyncio.sleep(2.5)  # longer than the idle timeout
    assert await pipeline.sent() == []
    conversation = await pipeline.metrics("conversation")
    assert metric_value(conversation, "hiker_statuses_received_total", status="read") == 1
    assert metric_value(conversation, "hiker_statuses_received_total", status="failed") == 1
    assert metric_value(conversation, "hiker_webhook_errors_total", code="131047") == 1
    assert metric_value(conversation, "hiker_timers_scheduled_total") == 0


async def test_bad_input_is_answered_and_nothing_is_published(
    make_pipeline: PipelineFactory, amqp_url: str
) -> None:
    pipeline = await make_pipeline(services=("ingress",), HIKER_MAX_BODY_BYTES=str(64 * 1024))
    url = pipeline.webhook_url
    body = encode(webhook_body(messages_change([text_message("15550000005", "hello")])))

    async def post(data: bytes, headers: dict[str, str]) -> int:
        async with pipeline.session.post(url, data=data, headers=headers) as response:
            return response.status

    assert await post(body, {}) == 401
    assert await post(body, {SIGNATURE_HEADER: sign(b"another secret", body)}) == 403
    assert await post(body, {SIGNATURE_HEADER: "sha256=zz"}) == 403
    assert await post(body + b" ", {SIGNATURE_HEADER: sign(APP_SECRET.encode(), body)}) == 403
    malformed = b'{"object": "whatsapp_business_account", "entry": ['
    assert await post(malformed, {SIGNATURE_HEADER: sign(APP_SECRET.encode(), malformed)}) == 400
    huge = b'{"pad": "' + b"x" * (128 * 1024) + b'"}'
    assert await post(huge, {SIGNATURE_HEADER: sign(APP_SECRET.encode(), huge)}) == 413
    assert await queue_depth(amqp_url, topology.CONVERSATION_INBOUND_QUEUE) == 0
    assert await queue_depth(amqp_url, topology.INSPECT_QUEUE) == 0
    ingress = await pipeline.metrics("ingress-ops")
    for outcome, count in [
        ("missing_signature", 1),
        ("bad_signature", 3),
        ("malformed", 1),
        ("too_large", 1),
        ("accepted", 0),
    ]:
        assert metric_value(ingress, "hiker_webhooks_received_total", outcome=outcome) == count


async def test_unknown_but_signed_shapes_are_kept_for_inspection(
    make_pipeline: PipelineFactory, amqp_url: str
) -> None:
    pipeline = await make_pipeline(services=("ingress",))
    assert await pipeline.post({"hello": "world"}) == 200
    template_update = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [
                    {"field": "message_template_status_update", "value": {"event": "APPROVED"}}
                ],
            }
        ],
    }
    assert await pipeline.post(template_update) == 200
    kept = await take_all(amqp_url, topology.INSPECT_QUEUE)
    assert [m.routing_key for m in kept] == ["unknown", "change.message_template_status_update"]
    assert json.loads(kept[0].body) == {"hello": "world"}
    assert json.loads(kept[1].body)["value"] == {"event": "APPROVED"}


async def test_verification_handshake(make_pipeline: PipelineFactory) -> None:
    pipeline = await make_pipeline(services=("ingress",))
    query = {
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }
    async with pipeline.session.get(pipeline.webhook_url, params=query) as response:
        assert response.status == 200
        assert await response.text() == "1158201444"
    query["hub.verify_token"] = "wrong"
    async with pipeline.session.get(pipeline.webhook_url, params=query) as response:
        assert response.status == 403


async def test_broker_unreachable_is_503_never_200(make_pipeline: PipelineFactory) -> None:
    pipeline = await make_pipeline(services=())
    from hiker.core.settings import IngressSettings, load_settings
    from hiker.ingress.app import create_app

    env = {**pipeline.env, "HIKER_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/"}
    await pipeline.start("ingress", create_app(load_settings(IngressSettings, env)))
    status = await pipeline.post(webhook_body(messages_change([text_message("1555", "hi")])))
    assert status == 503


async def test_graph_500_then_200_is_retried_and_sent_once(
    make_pipeline: PipelineFactory,
) -> None:
    pipeline = await make_pipeline(HIKER_IDLE_TIMEOUT_SECONDS="60")
    user = "15550000006"
    await pipeline.script_faults(user, {"status": 500, "code": 2})
    await pipeline.say(user, "hello")
    assert await pipeline.wait_for_texts(user, 1) == ["hello to you too"]
    await asyncio.sleep(1.0)
    assert await pipeline.texts(user) == ["hello to you too"]
    sender = await pipeline.metrics("sender")
    assert metric_value(sender, "hiker_graph_requests_total", status="500", code="2") == 1
    assert metric_value(sender, "hiker_send_retries_total", code="2") == 1
    assert metric_value(sender, "hiker_messages_sent_total", kind="reply") == 1


async def test_graph_131047_is_parked_with_its_error(
    make_pipeline: PipelineFactory, amqp_url: str
) -> None:
    pipeline = await make_pipeline(HIKER_IDLE_TIMEOUT_SECONDS="60")
    user = "15550000007"
    await pipeline.script_faults(
        user, {"status": 400, "code": 131047, "message": "Re-engagement message"}
    )
    await pipeline.say(user, "hello")
    for _ in range(100):
        if await queue_depth(amqp_url, topology.SENDER_PARKED_QUEUE):
            break
        await asyncio.sleep(0.05)
    [parked] = await take_all(amqp_url, topology.SENDER_PARKED_QUEUE)
    headers = parked.headers
    assert headers[topology.HEADER_GRAPH_CODE] == "131047"
    assert headers[topology.HEADER_PARKED_REASON] == "permanent"
    assert json.loads(str(headers[topology.HEADER_GRAPH_ERROR]))["message"] == (
        "Re-engagement message"
    )
    [action] = json.loads(parked.body)["actions"]
    assert (action["type"], action["body"]) == ("text", "hello to you too")
    assert await pipeline.sent(user) == []
    sender = await pipeline.metrics("sender")
    assert metric_value(sender, "hiker_messages_parked_total", code="131047") == 1


async def test_poison_message_goes_to_the_poison_queue(
    make_pipeline: PipelineFactory, amqp_url: str
) -> None:
    await make_pipeline(services=("conversation",))
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(topology.INBOUND_EXCHANGE)
        await exchange.publish(
            aio_pika.Message(b"not json", type="MessageReceived"), routing_key="message.text"
        )
    finally:
        await connection.close()
    for _ in range(100):
        if await queue_depth(amqp_url, topology.POISON_QUEUE):
            break
        await asyncio.sleep(0.05)
    assert await queue_depth(amqp_url, topology.POISON_QUEUE) == 1
