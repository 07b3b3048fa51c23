"""``hiker poison``: poisoned and inspected messages are listed without loss and replayed once, on
their original route, against the real RabbitMQ (and, end to end, conversation and the sender)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import pytest

from hiker.conversation.memory import Conversation
from hiker.conversation.responder import Answer, RuleBookResponder
from hiker.conversation.rulesource import RuleSource
from hiker.core import topology
from hiker.core.broker import Broker
from hiker.core.bundles import BUNDLE_HEADER
from hiker.core.contracts import ChangeReceived, MessageReceived, SendMessage
from hiker.core.observability import mask_phone
from hiker.core.topology import HEADER_REPLAYED_AT
from hiker.tools.heldqueue import ToolError
from hiker.tools.poison.queue import list_held, replay_held
from tests.integration.conftest import PHONE_NUMBER_ID, PipelineFactory, queue_depth
from tests.support import take_all, wait_for_depth

pytestmark = pytest.mark.integration

SECRET_TEXT = "my card number is 4111"  # what users wrote never appears in a listing
TOPOLOGY = topology.Topology(
    topology.EXCHANGES,
    (
        topology.POISON,
        topology.INSPECT,
        topology.CONVERSATION_INBOUND,
        topology.CONVERSATION_TIMERS,
        topology.SENDER_OUTBOX,
    ),
)
# A queue that takes one message and refuses the next (the broker nacks it), dead-lettering to
# the poison queue like the services' queues. Classic: a quorum queue applies its length limit
# a message or two late.
FULL_QUEUE = topology.QueueSpec(
    "test.poison.full",
    {
        "x-queue-type": "classic",
        "x-max-length": 1,
        "x-overflow": "reject-publish",
        "x-dead-letter-exchange": topology.DEAD_EXCHANGE,
        "x-dead-letter-routing-key": topology.RK_POISON,
    },
)
# Another consumer of user messages (the api service's copy, say): replays must not double it.
SIBLING_QUEUE = topology.QueueSpec(
    "test.poison.sibling",
    {"x-queue-type": "quorum"},
    ((topology.INBOUND_EXCHANGE, f"{topology.RK_MESSAGE_PREFIX}.#"),),
)


class FlakyResponder:
    """The rules responder behind a switch: while broken it raises, as a bug or an outage would."""

    broken = True

    def __init__(self, source: RuleSource) -> None:
        self._rules = RuleBookResponder(source)

    async def respond(self, message: MessageReceived, conversation: Conversation) -> Answer:
        if FlakyResponder.broken:
            raise RuntimeError("responder broken")
        return await self._rules.respond(message, conversation)


def flaky_responder(source: RuleSource) -> FlakyResponder:
    return FlakyResponder(source)


@pytest.fixture
async def broker(amqp_url: str) -> AsyncIterator[Broker]:
    broker = Broker(amqp_url, client_name="test-poison")
    await broker.connect(topology.Topology(topology.EXCHANGES, (*TOPOLOGY.queues, SIBLING_QUEUE)))
    yield broker
    await broker.close()


def message_received(user: str, text: str = SECRET_TEXT) -> MessageReceived:
    return MessageReceived(
        wamid=f"wamid.TEST{uuid.uuid4().hex}",
        phone_number_id=PHONE_NUMBER_ID,
        user=user,
        message_type="text",
        text=text,
        timestamp=int(time.time()),
        received_at=time.time(),
    )


def send_message(user: str) -> SendMessage:
    return SendMessage(
        idempotency_key=f"reply:wamid.TEST{uuid.uuid4().hex}",
        phone_number_id=PHONE_NUMBER_ID,
        to=user,
        text=SECRET_TEXT,
        kind="reply",
        correlation_id=f"wamid.TEST{uuid.uuid4().hex}",
    )


async def poison(amqp_url: str, queue: str) -> None:
    """Take the next message of ``queue`` and refuse it, as a consumer refuses a bad payload."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        source = await channel.get_queue(queue, ensure=False)
        message = await source.get(timeout=5)
        assert message is not None
        await message.reject(requeue=False)
    finally:
        await connection.close()


async def poisoned_inbound(broker: Broker, amqp_url: str, user: str) -> MessageReceived:
    """A user message conversation refused, in the poison queue."""
    event = message_received(user)
    before = await queue_depth(amqp_url, topology.POISON_QUEUE)
    await broker.publish(
        topology.INBOUND_EXCHANGE,
        f"{topology.RK_MESSAGE_PREFIX}.text",
        event.to_bytes(),
        type_name=event.type_name(),
        message_id=event.wamid,
        correlation_id=event.wamid,
    )
    await poison(amqp_url, topology.CONVERSATION_INBOUND_QUEUE)
    await wait_for_depth(amqp_url, topology.POISON_QUEUE, before + 1)
    return event


async def poisoned_bundle(broker: Broker, amqp_url: str, *users: str) -> list[SendMessage]:
    """A bundle of send commands the sender refused, in the poison queue."""
    commands = [send_message(user) for user in users]
    body = json.dumps([command.model_dump(mode="json") for command in commands]).encode()
    await poisoned_send(broker, amqp_url, body, {BUNDLE_HEADER: len(commands)})
    return commands


async def poisoned_send(
    broker: Broker, amqp_url: str, body: bytes, headers: dict[str, Any] | None = None
) -> None:
    before = await queue_depth(amqp_url, topology.POISON_QUEUE)
    await broker.publish(
        topology.COMMANDS_EXCHANGE,
        topology.RK_SEND,
        body,
        type_name=SendMessage.type_name(),
        headers=headers,
    )
    await poison(amqp_url, topology.SENDER_OUTBOX_QUEUE)
    await wait_for_depth(amqp_url, topology.POISON_QUEUE, before + 1)


async def test_listing_shows_why_each_died_and_leaves_the_queue_as_found(
    broker: Broker, amqp_url: str
) -> None:
    one = await poisoned_inbound(broker, amqp_url, "15550002001")
    bundle = await poisoned_bundle(broker, amqp_url, "15550002002", "15550002003")

    listings = [await list_held(amqp_url) for _ in range(3)]
    assert await queue_depth(amqp_url, topology.POISON_QUEUE) == 2
    # The same messages in the same order every time: looking changes nothing.
    assert len({tuple(m.digest for m in listing.messages) for listing in listings}) == 1
    listing = listings[-1]
    assert listing.totals == {topology.POISON_QUEUE: 2}  # hiker.inspect only when asked for
    first, second = (message.row() for message in listing.messages)
    assert first["died_in"] == topology.CONVERSATION_INBOUND_QUEUE
    assert (first["reason"], first["count"], first["type"], first["item_count"]) == (
        "rejected",
        1,
        "MessageReceived",
        1,
    )
    assert first["first_death"].endswith("Z")
    assert first["route"] == f"(default exchange) / {topology.CONVERSATION_INBOUND_QUEUE}"
    assert first["items"] == [{"id": one.wamid, "user": mask_phone("15550002001")}]
    assert second["died_in"] == topology.SENDER_OUTBOX_QUEUE
    assert (second["type"], second["item_count"]) == ("SendMessage", 2)
    assert second["items"] == [
        {"id": command.idempotency_key, "user": mask_phone(command.to)} for command in bundle
    ]
    shown = json.dumps([message.row() for message in listing.messages])
    for secret in (SECRET_TEXT, "15550002001", "15550002002", "15550002003"):
        assert secret not in shown


async def test_a_refused_copy_leaves_the_original_poisoned(broker: Broker, amqp_url: str) -> None:
    # The broker nacks the replayed copy (its queue is full): the original must stay.
    await broker.declare_queue(FULL_QUEUE)
    event = message_received("15550002011")
    await broker.publish(
        "",
        FULL_QUEUE.name,
        event.to_bytes(),
        type_name=event.type_name(),
        message_id=event.wamid,
        correlation_id=event.wamid,
        headers={topology.HEADER_CORRELATION_ID: event.wamid},
    )
    await poison(amqp_url, FULL_QUEUE.name)
    await wait_for_depth(amqp_url, topology.POISON_QUEUE, 1)
    await broker.publish("", FULL_QUEUE.name, b"{}", type_name="Filler")

    with pytest.raises(ToolError, match="did not take the copy"):
        await replay_held(amqp_url)
    [kept] = (await list_held(amqp_url)).messages
    assert (kept.death and kept.death.queue) == FULL_QUEUE.name
    assert kept.replayed_at is None

    await take_all(amqp_url, FULL_QUEUE.name)  # the cause is fixed: room again
    report = await replay_held(amqp_url)
    assert (report.replayed, report.left) == (1, 0)
    assert await queue_depth(amqp_url, topology.POISON_QUEUE) == 0
    [copy] = await take_all(amqp_url, FULL_QUEUE.name)
    assert copy.body == event.to_bytes()
    assert (copy.type, copy.message_id, copy.correlation_id) == (
        "MessageReceived",
        event.wamid,
        event.wamid,
    )
    headers = copy.headers or {}
    assert headers[topology.HEADER_CORRELATION_ID] == event.wamid
    assert HEADER_REPLAYED_AT in headers
    assert "x-death" not in headers  # the broker's record of the removed copy stays behind


async def test_id_selects_one_message_and_each_is_replayed_at_most_once(
    broker: Broker, amqp_url: str
) -> None:
    first = await poisoned_inbound(broker, amqp_url, "15550002021")
    bundle = await poisoned_bundle(broker, amqp_url, "15550002022", "15550002023")
    last = await poisoned_inbound(broker, amqp_url, "15550002024")
    await take_all(amqp_url, SIBLING_QUEUE.name)

    [selected] = (await list_held(amqp_url, ids=[bundle[1].idempotency_key])).messages
    assert selected.item_count == 2  # an item selects its whole bundle
    assert (await replay_held(amqp_url, ids=[bundle[1].idempotency_key])).replayed == 1
    assert (await replay_held(amqp_url, ids=[bundle[1].idempotency_key])).replayed == 0
    [replayed] = await take_all(amqp_url, topology.SENDER_OUTBOX_QUEUE)
    assert [item["idempotency_key"] for item in json.loads(replayed.body)] == [
        command.idempotency_key for command in bundle
    ]
    assert (replayed.headers or {})[BUNDLE_HEADER] == 2

    remaining = (await list_held(amqp_url)).messages
    assert [message.items[0].id for message in remaining] == [first.wamid, last.wamid]
    report = await replay_held(amqp_url, queues=[topology.CONVERSATION_INBOUND_QUEUE])
    assert report.replayed == 2
    assert await queue_depth(amqp_url, topology.POISON_QUEUE) == 0
    back = await take_all(amqp_url, topology.CONVERSATION_INBOUND_QUEUE)
    assert [MessageReceived.model_validate_json(m.body).wamid for m in back] == [
        first.wamid,
        last.wamid,
    ]
    # Back to the queue they died in alone, not through the exchange to every queue bound to it.
    assert await queue_depth(amqp_url, SIBLING_QUEUE.name) == 0
    assert (await replay_held(amqp_url)).replayed == 0


async def test_a_message_of_unknown_origin_stays_poisoned(broker: Broker, amqp_url: str) -> None:
    # Published straight to the dead-letter exchange: no x-death says where it came from.
    await broker.publish(
        topology.DEAD_EXCHANGE, topology.RK_POISON, b"not json", type_name="Mystery"
    )
    await wait_for_depth(amqp_url, topology.POISON_QUEUE, 1)
    [row] = [message.row() for message in (await list_held(amqp_url)).messages]
    assert (row["route"], row["readable"], row["item_count"]) == (None, False, None)
    report = await replay_held(amqp_url)
    assert (report.replayed, report.no_route, report.left) == (0, 1, 1)
    assert await queue_depth(amqp_url, topology.POISON_QUEUE) == 1


async def test_inspected_updates_replay_to_their_exchange_and_routing_key(
    broker: Broker, amqp_url: str
) -> None:
    change = ChangeReceived(
        field="message_template_status_update", value={"event": "APPROVED"}, received_at=1.0
    )
    routing_key = f"{topology.RK_CHANGE_PREFIX}.{change.field}"
    await broker.publish(
        topology.INBOUND_EXCHANGE, routing_key, change.to_bytes(), type_name=change.type_name()
    )
    await wait_for_depth(amqp_url, topology.INSPECT_QUEUE, 1)
    [row] = [m.row() for m in (await list_held(amqp_url, queues=[topology.INSPECT_QUEUE])).messages]
    assert (row["died_in"], row["reason"], row["type"]) == (None, None, "ChangeReceived")
    assert row["delivered_with"] == f"{topology.INBOUND_EXCHANGE} / {routing_key}"
    assert (await replay_held(amqp_url)).replayed == 0  # hiker.inspect only when asked for

    # A consumer for this field is deployed; the kept update is replayed to it.
    new_consumer = topology.QueueSpec(
        "test.poison.templates",
        {"x-queue-type": "quorum"},
        ((topology.INBOUND_EXCHANGE, routing_key),),
    )
    await broker.declare_queue(new_consumer)
    report = await replay_held(amqp_url, queues=[topology.INSPECT_QUEUE])
    assert report.replayed == 1
    assert await queue_depth(amqp_url, new_consumer.name) == 1
    # Its copy is back in hiker.inspect too (the binding matches it), marked: not replayed again.
    [copy] = (await list_held(amqp_url, queues=[topology.INSPECT_QUEUE])).messages
    assert copy.replayed_at is not None
    again = await replay_held(amqp_url, queues=[topology.INSPECT_QUEUE])
    assert (again.replayed, again.replayed_before) == (0, 1)
    assert await queue_depth(amqp_url, new_consumer.name) == 1
    # Named by id, it is replayed again.
    by_id = await replay_held(amqp_url, queues=[topology.INSPECT_QUEUE], ids=[copy.digest])
    assert by_id.replayed == 1
    assert await queue_depth(amqp_url, new_consumer.name) == 2
    assert await queue_depth(amqp_url, topology.INSPECT_QUEUE) == 1


async def test_replayed_message_is_processed_by_conversation_once_the_cause_is_fixed(
    make_pipeline: PipelineFactory, amqp_url: str
) -> None:
    FlakyResponder.broken = True
    pipeline = await make_pipeline(
        HIKER_RESPONDER=f"{__name__}:flaky_responder", HIKER_IDLE_TIMEOUT_SECONDS="600"
    )
    user = "15550002031"
    wamid = await pipeline.say(user, "hello")
    # Failed until the delivery limit: dead-lettered to the poison queue, nobody answered.
    await wait_for_depth(amqp_url, topology.POISON_QUEUE, 1, within=30)
    [poisoned] = (await list_held(amqp_url)).messages
    assert poisoned.death is not None
    assert (poisoned.death.queue, poisoned.items[0].id) == (
        topology.CONVERSATION_INBOUND_QUEUE,
        wamid,
    )
    assert poisoned.death.reason in ("delivery_limit", "rejected")
    assert await pipeline.texts(user) == []

    FlakyResponder.broken = False
    report = await replay_held(amqp_url, ids=[wamid])
    assert report.replayed == 1
    assert await pipeline.wait_for_texts(user, 1) == ["hello to you too"]
    assert await queue_depth(amqp_url, topology.POISON_QUEUE) == 0
    assert (await replay_held(amqp_url)).replayed == 0
    await asyncio.sleep(0.5)
    assert await pipeline.texts(user) == ["hello to you too"]


async def test_cli_lists_masked_and_replays(
    make_pipeline: PipelineFactory, broker: Broker, amqp_url: str
) -> None:
    user = "15550002041"
    command = send_message(user)
    await poisoned_send(broker, amqp_url, command.to_bytes())  # before the sender takes it
    pipeline = await make_pipeline(services=("graph", "sender"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIKER_")}
    env.update(pipeline.env)

    async def hiker(*args: str, expect: int = 0) -> str:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hiker", "poison", *args,
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
        output = stdout.decode() + stderr.decode()
        assert process.returncode == expect, output
        for secret in (user, SECRET_TEXT, "guest:guest"):
            assert secret not in output
        return stdout.decode()

    table = await hiker("list")
    assert topology.SENDER_OUTBOX_QUEUE in table
    assert command.idempotency_key in table
    assert mask_phone(user) in table
    listed: dict[str, Any] = json.loads(await hiker("list", "--json"))
    assert listed["totals"] == {topology.POISON_QUEUE: 1}
    assert listed["messages"][0]["reason"] == "rejected"
    assert "replayed 1;" in await hiker("replay", "--id", command.idempotency_key)
    # The sender takes it as it would have the first time.
    assert await pipeline.wait_for_texts(user, 1) == [SECRET_TEXT]
    assert json.loads(await hiker("list", "--json"))["messages"] == []
