"""``hiker events`` against the real broker and Redis, POSTing to receivers in this process.

Facts are published where ingress and the sender publish them (``hiker.inbound``,
``hiker.outcomes``); the receivers are aiohttp applications on ephemeral ports that can be
absent (connection refused), failing (503), refusing for good (410) or slow.
"""

from __future__ import annotations

import json
import time

import aiohttp
import pytest
from redis.asyncio import Redis

from hiker.core import topology
from hiker.core.contracts import (
    OwnerChanged,
    StatusError,
    StatusPricing,
)
from hiker.core.keys import Keys
from hiker.core.observability import mask_phone
from hiker.core.ownership import OwnershipStore, owner_destination
from hiker.core.settings import EventsSettings, load_settings
from hiker.core.signature import SignatureCheck, check_signature
from hiker.events.parking import ParkedEvent
from hiker.tools.doctor.events import check_events
from hiker.tools.doctor.report import Status
from hiker.tools.parked.events import list_parked_events, replay_parked_events
from tests.integration.event_stack import (
    NUMBER,
    SECRET,
    Receiver,
    StackFactory,
    answered,
    depth_at_least,
    endpoint_names,
    has,
    make_stack,
    message,
    posted,
    publish_conversations,
    status,
    until,
)
from tests.support import metric_value, queue_depth, take_all

__all__ = ["make_stack"]  # a fixture the tests take

pytestmark = pytest.mark.integration


async def test_events_reach_a_receiver_that_was_down_in_seq_order_none_lost(
    make_stack: StackFactory,
) -> None:
    receiver = Receiver()  # not listening yet: connections are refused
    stack = await make_stack(receiver)
    users = ["15550001001", "15550001002", "15550001003"]
    per_user = 6
    await publish_conversations(stack, users, per_user)
    expected = len(users) * (per_user + 2)

    async def refused_some() -> bool:
        text = await stack.metrics()
        (name,) = endpoint_names(text)
        answers = metric_value(
            text, "hiker_events_answers_total", endpoint=name, answer="connection_error"
        )
        return answers >= 1

    await until(refused_some, "a refused connection")
    receiver.status = 503
    await receiver.start()
    await until(lambda: answered(receiver, 503), "a 503 answered")
    receiver.status = 200
    try:
        await until(lambda: has(receiver, expected), f"{expected} events delivered", 60)
    finally:
        await receiver.stop()

    events = receiver.delivered()
    assert len(events) == expected
    assert len({event["id"] for event in events}) == expected
    for user in users:
        mine = sorted((e for e in events if e["user"] == user), key=lambda e: e["seq"])
        assert [e["type"] for e in mine] == (
            ["message.received"] * per_user + ["message.status", "send.parked"]
        )
        assert [e["data"]["wamid"] for e in mine[:per_user]] == [
            f"wamid.{user}.{n}" for n in range(per_user)
        ]
        seqs = [e["seq"] for e in mine]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        assert all(e["phone_number_id"] == NUMBER for e in mine)
    assert await queue_depth(stack.amqp_url, topology.EVENTS_PARKED_QUEUE) == 0
    for body, signature in zip(receiver.bodies, receiver.signatures, strict=True):
        assert check_signature([SECRET.encode()], body, signature) is SignatureCheck.VALID
        assert check_signature([b"another-secret"], body, signature) is SignatureCheck.INVALID


async def test_a_receiver_answering_410_gets_the_event_parked_at_once(
    make_stack: StackFactory,
) -> None:
    gone = Receiver(status=410)
    await gone.start()
    try:
        stack = await make_stack(gone)
        await stack.publish(topology.INBOUND_EXCHANGE, "message.text", message("15550002001", 0))
        await until(
            lambda: depth_at_least(stack, topology.EVENTS_PARKED_QUEUE, 1), "a parked event"
        )
    finally:
        await gone.stop()
    assert gone.answered == [410]
    (parked,) = await take_all(stack.amqp_url, topology.EVENTS_PARKED_QUEUE)
    why = ParkedEvent.from_headers(parked.headers or {})
    assert (why.reason, why.status, why.attempt) == ("permanent", "410", 1)
    assert why.endpoint.startswith("127.0.0.1-")
    assert json.loads(parked.body) == json.loads(gone.bodies[0])
    text = await stack.metrics()
    assert (
        metric_value(text, "hiker_events_parked_total", endpoint=why.endpoint, reason="permanent")
        == 1
    )


async def test_a_parked_event_is_listed_then_replayed_with_its_id_and_seq(
    make_stack: StackFactory,
) -> None:
    receiver = Receiver(status=410)
    await receiver.start()
    try:
        stack = await make_stack(receiver)
        await stack.publish(topology.INBOUND_EXCHANGE, "message.text", message("15550006001", 0))
        await until(
            lambda: depth_at_least(stack, topology.EVENTS_PARKED_QUEUE, 1), "a parked event"
        )
        listing = await list_parked_events(stack.amqp_url, limit=10, reasons=["410"])
        (row,) = [parked.row(time.time()) for parked in listing.messages]
        assert (row["reason"], row["status"]) == ("permanent", "410")
        assert row["type"] == "message.received"
        assert row["user"] == mask_phone("15550006001")
        assert await queue_depth(stack.amqp_url, topology.EVENTS_PARKED_QUEUE) == 1

        receiver.status = 200  # the backend fixed what it refused
        report = await replay_parked_events(stack.amqp_url)
        assert (report.replayed, report.left_parked) == (1, 0)
        await until(lambda: has(receiver, 1), "the replayed event")
    finally:
        await receiver.stop()
    first, replayed = (json.loads(body) for body in receiver.bodies)
    assert (replayed["id"], replayed["seq"]) == (first["id"], first["seq"])
    assert row["id"] == first["id"]
    assert await queue_depth(stack.amqp_url, topology.EVENTS_PARKED_QUEUE) == 0


async def test_one_endpoint_down_does_not_delay_another(make_stack: StackFactory) -> None:
    down, slow_down, up = Receiver(), Receiver(status=200, delay=5.0), Receiver()
    await up.start()
    await slow_down.start()
    try:
        stack = await make_stack(down, slow_down, up, HIKER_EVENTS_CONCURRENCY="2")
        started = time.monotonic()
        for n in range(20):
            await stack.publish(topology.INBOUND_EXCHANGE, "message.text", message("1555003", n))
        await until(lambda: has(up, 20), "20 events at the healthy endpoint", 20)
        took = time.monotonic() - started
    finally:
        await up.stop()
        await slow_down.stop()
    # The slow endpoint answers one event in 5 s, two at a time: it took at most 4 by now.
    assert len(slow_down.bodies) < 20
    assert took < 5.0 * 10 / 2


async def test_a_redelivered_event_keeps_its_id_and_seq(make_stack: StackFactory) -> None:
    receiver = Receiver()
    await receiver.start()
    try:
        stack = await make_stack(receiver)
        first = message("15550004001", 0)
        await stack.publish(topology.INBOUND_EXCHANGE, "message.text", first)
        await stack.publish(topology.INBOUND_EXCHANGE, "message.text", message("15550004001", 1))
        await until(lambda: has(receiver, 2), "two events")
        # Meta (or a crash before an ack) delivers the first message again.
        await stack.publish(topology.INBOUND_EXCHANGE, "message.text", first)
        await until(lambda: posted(receiver, 3), "the redelivery")
    finally:
        await receiver.stop()
    bodies = [json.loads(body) for body in receiver.bodies]
    assert bodies[2]["id"] == bodies[0]["id"]
    assert bodies[2]["seq"] == bodies[0]["seq"]
    assert bodies[1]["seq"] == bodies[0]["seq"] + 1


async def test_an_endpoint_failing_past_the_window_gets_the_event_parked(
    make_stack: StackFactory,
) -> None:
    failing = Receiver(status=503)
    await failing.start()
    try:
        # A window of about 4 s: attempts after 1 s and 2 s, then the next would land past it.
        stack = await make_stack(failing, HIKER_EVENTS_RETRY_HOURS=str(4 / 3600))
        await stack.publish(topology.INBOUND_EXCHANGE, "message.text", message("1555005", 0))
        await until(
            lambda: depth_at_least(stack, topology.EVENTS_PARKED_QUEUE, 1), "a parked event"
        )
    finally:
        await failing.stop()
    assert failing.answered == [503, 503, 503]
    (parked,) = await take_all(stack.amqp_url, topology.EVENTS_PARKED_QUEUE)
    why = ParkedEvent.from_headers(parked.headers or {})
    assert (why.reason, why.status, why.attempt) == ("retries_exhausted", "503", 3)


async def test_doctor_pings_each_endpoint_signed_and_says_which_one_fails() -> None:
    taking, refusing, down = Receiver(), Receiver(status=401), Receiver()
    await taking.start()
    await refusing.start()
    settings = load_settings(
        EventsSettings,
        {
            "HIKER_EVENTS_URLS": f"{taking.url},{refusing.url},{down.url}",
            "HIKER_EVENTS_SECRET": SECRET,
        },
    )
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session:
            rows = await check_events(session, settings)
    finally:
        await taking.stop()
        await refusing.stop()
    assert [row.status for row in rows] == [Status.OK, Status.FAIL, Status.FAIL]
    assert "refused a signed ping (HTTP 401)" in rows[1].detail
    assert "connection_error" in rows[2].detail
    assert all(str(down.port) not in row.detail + row.check for row in rows)
    (body,) = taking.bodies
    assert json.loads(body)["type"] == "ping"
    assert check_signature([SECRET.encode()], body, taking.signatures[0]) is SignatureCheck.VALID


async def test_a_handoff_and_its_end_reach_the_backend_as_conversation_owner_events(
    make_stack: StackFactory, redis_url: str, redis_prefix: str
) -> None:
    receiver = Receiver()
    await receiver.start()
    stack = await make_stack(receiver)

    async def announce(change: OwnerChanged) -> None:
        destination = owner_destination(change.owner)
        await stack.publish(destination.exchange, destination.routing_key, change)

    client = Redis.from_url(redis_url)
    try:
        store = OwnershipStore(client, Keys(redis_prefix), announce=announce)
        user, now = "15550001021", time.time()
        await store.hand_to_person(NUMBER, user, seconds=600, reason="refund", now=now)
        await store.give_back(NUMBER, user, now=now + 1)
        await until(lambda: has(receiver, 2), "2 events delivered")
    finally:
        await client.aclose()
        await receiver.stop()
    events = sorted(receiver.delivered(), key=lambda e: e["seq"])
    assert [(e["type"], e["user"], e["data"]["owner"]) for e in events] == [
        ("conversation.owner", user, "human"),
        ("conversation.owner", user, "bot"),
    ]
    assert events[0]["data"]["reason"] == "refund"
    assert events[0]["data"]["until"].startswith(
        time.strftime("%Y-%m-%dT%H:%M", time.gmtime(now + 600))
    )
    assert events[1]["data"]["until"] is None


async def test_a_send_meta_failed_reaches_the_backend_with_its_errors_price_and_key(
    make_stack: StackFactory,
) -> None:
    receiver = Receiver()
    await receiver.start()
    stack = await make_stack(receiver)
    user = "15550001031"
    sent = status(user, "wamid.out.failing", "sent").model_copy(
        update={
            "biz_opaque_callback_data": "api:snd_31",
            "pricing": StatusPricing(pricing_model="PMP", type="regular", category="marketing"),
        }
    )
    failed = status(user, "wamid.out.failing", "failed").model_copy(
        update={
            "biz_opaque_callback_data": "api:snd_31",
            "errors": (StatusError(code=131049, title="not delivered", details="marketing limit"),),
        }
    )
    try:
        await stack.publish(topology.INBOUND_EXCHANGE, "status.sent", sent)
        await stack.publish(topology.INBOUND_EXCHANGE, "status.failed", failed)
        await until(lambda: has(receiver, 2), "2 events delivered")
    finally:
        await receiver.stop()
    by_status = {e["data"]["status"]: e["data"] for e in receiver.delivered()}
    assert by_status["sent"]["pricing"] == {
        "pricing_model": "PMP",
        "type": "regular",
        "category": "marketing",
        "billable": None,
        "charged": True,
    }
    assert by_status["failed"]["callback_data"] == "api:snd_31"
    assert by_status["failed"]["errors"] == [
        {"code": 131049, "title": "not delivered", "message": None, "details": "marketing limit"}
    ]
