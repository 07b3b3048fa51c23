"""``hiker parked``: parked sends are listed without loss and replayed once, against the real
RabbitMQ and Redis, the sender and the Graph mock."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid

import aio_pika
import pytest
from redis.asyncio import Redis

from hiker.core import topology
from hiker.core.claims import ClaimStore
from hiker.core.contracts import SendMessage
from hiker.core.keys import Keys
from hiker.core.observability import mask_phone
from hiker.tools.parked.queue import list_parked, replay_parked
from tests.integration.conftest import PHONE_NUMBER_ID, Pipeline, PipelineFactory, queue_depth
from tests.support import wait_for_depth

pytestmark = pytest.mark.integration


async def send_command(amqp_url: str, to: str, text: str = "hello to you too") -> SendMessage:
    """What conversation publishes: one send command through the commands exchange."""
    command = SendMessage(
        idempotency_key=f"reply:{uuid.uuid4().hex}",
        phone_number_id=PHONE_NUMBER_ID,
        to=to,
        text=text,
        kind="reply",
        correlation_id=f"wamid.TEST{uuid.uuid4().hex}",
    )
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(topology.COMMANDS_EXCHANGE)
        await exchange.publish(
            aio_pika.Message(
                command.to_bytes(),
                type=command.type_name(),
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            topology.RK_SEND,
            mandatory=True,
        )
    finally:
        await connection.close()
    return command


async def park(pipeline: Pipeline, amqp_url: str, to: str, *faults: dict[str, int]) -> None:
    await pipeline.script_faults(to, *faults)
    before = await queue_depth(amqp_url, topology.SENDER_PARKED_QUEUE)
    await send_command(amqp_url, to)
    await wait_for_depth(amqp_url, topology.SENDER_PARKED_QUEUE, before + 1)


async def test_parked_send_is_listed_twice_then_replayed_once(
    make_pipeline: PipelineFactory, amqp_url: str, redis_url: str, redis_prefix: str
) -> None:
    pipeline = await make_pipeline(services=("graph", "sender"))
    user = "15550001001"
    await park(pipeline, amqp_url, user, {"status": 401, "code": 190})

    for _ in range(2):  # listing leaves the queue as it was
        listing = await list_parked(amqp_url)
        assert listing.totals[topology.SENDER_PARKED_QUEUE] == 1
        [parked] = listing.messages
        row = parked.row(time.time())
        assert (row["reason"], row["graph_code"], row["graph_status"]) == (
            "permanent",
            "190",
            "401",
        )
        assert row["to"] == mask_phone(user)
        assert user not in json.dumps(row)
        assert row["kind"] == "reply"
        # The parking time travels as a decimal string; the bound allows for a slow machine.
        assert 0 <= row["age_seconds"] < 120
        assert await queue_depth(amqp_url, topology.SENDER_PARKED_QUEUE) == 1

    # The token was renewed (the mock accepts again): replay sends it, exactly once.
    report = await replay_parked(amqp_url, redis_url, Keys(redis_prefix), reasons=["190"])
    assert (report.replayed, report.already_sent, report.left_parked) == (1, 0, 0)
    assert await pipeline.wait_for_texts(user, 1) == ["hello to you too"]
    assert await queue_depth(amqp_url, topology.SENDER_PARKED_QUEUE) == 0

    again = await replay_parked(amqp_url, redis_url, Keys(redis_prefix))
    assert (again.replayed, again.already_sent, again.left_parked) == (0, 0, 0)
    await asyncio.sleep(0.5)
    assert await pipeline.texts(user) == ["hello to you too"]


async def test_looking_at_parked_sends_many_times_drops_none(
    make_pipeline: PipelineFactory, amqp_url: str
) -> None:
    # Every listing returns the messages to the queue, which a quorum queue counts: on RabbitMQ
    # 4.0-4.2 the default limit of 20 would drop them. More listings than that change nothing.
    pipeline = await make_pipeline(services=("graph", "sender"))
    user = "15550001009"
    await park(pipeline, amqp_url, user, {"status": 401, "code": 190})
    for _ in range(25):
        assert (await list_parked(amqp_url)).totals[topology.SENDER_PARKED_QUEUE] == 1
    assert await queue_depth(amqp_url, topology.SENDER_PARKED_QUEUE) == 1
    [parked] = (await list_parked(amqp_url)).messages
    assert parked.row(time.time())["graph_code"] == "190"


async def test_reason_filter_leaves_other_codes_parked(
    make_pipeline: PipelineFactory, amqp_url: str, redis_url: str, redis_prefix: str
) -> None:
    pipeline = await make_pipeline(services=("graph", "sender"))
    expired, outside_window = "15550001002", "15550001003"
    await park(pipeline, amqp_url, expired, {"status": 401, "code": 190})
    await park(pipeline, amqp_url, outside_window, {"status": 400, "code": 131047})

    assert [p.graph_code for p in (await list_parked(amqp_url, reasons=["131047"])).messages] == [
        "131047"
    ]
    report = await replay_parked(amqp_url, redis_url, Keys(redis_prefix), reasons=["190"])
    assert (report.replayed, report.left_parked) == (1, 1)
    assert await pipeline.wait_for_texts(expired, 1) == ["hello to you too"]
    remaining = await list_parked(amqp_url)
    assert [p.graph_code for p in remaining.messages] == ["131047"]
    assert remaining.messages[0].row(time.time())["to"] == mask_phone(outside_window)
    assert await pipeline.texts(outside_window) == []


async def test_a_copy_replayed_before_a_crash_is_not_sent_again(
    make_pipeline: PipelineFactory, amqp_url: str, redis_url: str, redis_prefix: str
) -> None:
    """A run published the send, which went through, but died before acking the parked copy."""
    pipeline = await make_pipeline(services=("graph", "sender"))
    user = "15550001004"
    await park(pipeline, amqp_url, user, {"status": 401, "code": 190})
    [parked] = (await list_parked(amqp_url)).messages
    assert parked.command is not None
    redis = Redis.from_url(redis_url)
    try:
        # What the sender records once Graph accepted the replayed copy.
        sent = ClaimStore(redis, lease_seconds=30, done_ttl_seconds=60)
        await sent.confirm(
            Keys(redis_prefix).sent(parked.command.phone_number_id, parked.command.idempotency_key),
            b"wamid:X",
        )
    finally:
        await redis.aclose()

    report = await replay_parked(amqp_url, redis_url, Keys(redis_prefix))
    assert (report.replayed, report.already_sent, report.left_parked) == (0, 1, 0)
    assert await queue_depth(amqp_url, topology.SENDER_PARKED_QUEUE) == 0
    await asyncio.sleep(0.5)
    assert await pipeline.texts(user) == []


async def test_a_send_parked_again_after_a_replay_can_be_replayed_again(
    make_pipeline: PipelineFactory, amqp_url: str, redis_url: str, redis_prefix: str
) -> None:
    pipeline = await make_pipeline(services=("graph", "sender"))
    user = "15550001007"
    await park(pipeline, amqp_url, user, {"status": 401, "code": 190})
    # Replayed too early: the token is still refused, and the send is parked anew at once.
    await pipeline.script_faults(user, {"status": 401, "code": 190})
    assert (await replay_parked(amqp_url, redis_url, Keys(redis_prefix))).replayed == 1
    await wait_for_depth(amqp_url, topology.SENDER_PARKED_QUEUE, 1)
    assert (await replay_parked(amqp_url, redis_url, Keys(redis_prefix))).replayed == 1
    assert await pipeline.wait_for_texts(user, 1) == ["hello to you too"]
    await asyncio.sleep(0.5)
    assert await pipeline.texts(user) == ["hello to you too"]
    assert await queue_depth(amqp_url, topology.SENDER_PARKED_QUEUE) == 0


async def test_replayed_send_gets_a_fresh_set_of_retries(
    make_pipeline: PipelineFactory, amqp_url: str, redis_url: str, redis_prefix: str
) -> None:
    pipeline = await make_pipeline(services=("graph", "sender"), HIKER_MAX_ATTEMPTS="2")
    user = "15550001005"
    await park(pipeline, amqp_url, user, {"status": 500, "code": 2}, {"status": 500, "code": 2})
    [parked] = (await list_parked(amqp_url, reasons=["retries_exhausted"])).messages
    assert parked.attempt == 2

    # One more transient failure after the replay: with the attempt reset to 1 the sender retries
    # it instead of parking it again at once.
    await pipeline.script_faults(user, {"status": 500, "code": 2})
    report = await replay_parked(
        amqp_url, redis_url, Keys(redis_prefix), reasons=["retries_exhausted"]
    )
    assert report.replayed == 1
    assert await pipeline.wait_for_texts(user, 1) == ["hello to you too"]
    assert await queue_depth(amqp_url, topology.SENDER_PARKED_QUEUE) == 0


async def test_cli_lists_masked_and_replays(make_pipeline: PipelineFactory, amqp_url: str) -> None:
    pipeline = await make_pipeline(services=("graph", "sender"))
    user = "15550001006"
    await park(pipeline, amqp_url, user, {"status": 401, "code": 190})
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIKER_")}
    env.update(pipeline.env)

    async def hiker(*args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hiker", "parked", *args,
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, stdout.decode() + stderr.decode()
        assert user not in stdout.decode() + stderr.decode()
        return stdout.decode()

    table = await hiker("list")
    assert "190" in table
    assert mask_phone(user) in table
    assert "hello to you too" not in table  # what the user was sent is not the operator's
    listed = json.loads(await hiker("list", "--json"))
    assert listed["total"] == 1
    assert listed["parked"][0]["graph_message"] == "scripted failure"
    assert "replayed 1;" in await hiker("replay", "--reason", "190")
    assert await pipeline.wait_for_texts(user, 1) == ["hello to you too"]
    assert json.loads(await hiker("list", "--json")) == {"total": 0, "parked": []}
