"""A 3-node RabbitMQ cluster of the test's own: quorum queues on every node, and the node
leading them stopped while webhooks come in. The services' connections move to the nodes
left; every webhook answered 200 is served once, nothing is poisoned."""

from __future__ import annotations

import asyncio

import aiormq
import pytest

from hiker.core import topology
from hiker.core.broker import connect
from hiker.tools.simulate import encode, messages_change, text_message, webhook_body
from tests.ha.conftest import post_until_accepted, ready, wait_until
from tests.ha.rabbit_cluster import RabbitCluster
from tests.integration.conftest import PipelineFactory

pytestmark = [pytest.mark.ha, pytest.mark.timeout(900)]

REPLY = "hello to you too"
HIKER_QUEUES = (
    topology.CONVERSATION_INBOUND_QUEUE,
    topology.CONVERSATION_TIMERS_QUEUE,
    topology.SENDER_OUTBOX_QUEUE,
    topology.POISON_QUEUE,
)


async def test_the_group_size_is_part_of_a_quorum_queues_equivalence(
    rabbit_cluster: RabbitCluster,
) -> None:
    """Why Hiker sends x-quorum-initial-group-size only when configured, and never changes it:
    a declaration must repeat what the queue was created with, present or absent."""
    connection = await connect(rabbit_cluster.url())
    quorum = {"x-queue-type": "quorum"}
    sized = {**quorum, "x-quorum-initial-group-size": 3}
    try:
        for created, again, name in ((quorum, sized, "ha.plain"), (sized, quorum, "ha.sized")):
            channel = await connection.channel()
            await channel.declare_queue(name, durable=True, arguments=created)
            await channel.declare_queue(name, durable=True, arguments=created)  # the same: fine
            refused = await connection.channel()
            with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed, match="group-size"):
                await refused.declare_queue(name, durable=True, arguments=again)
        members = {row["name"]: row["members"] for row in rabbit_cluster.queues()}
        # Unset, RabbitMQ's own default puts a queue on three nodes, here every node.
        assert len(members["ha.plain"]) == len(members["ha.sized"]) == 3
    finally:
        channel = await connection.channel()
        for name in ("ha.plain", "ha.sized"):
            await channel.queue_delete(name)
        await connection.close()


async def test_the_node_leading_the_queues_stopped_mid_stream(
    make_pipeline: PipelineFactory, rabbit_cluster: RabbitCluster
) -> None:
    pipeline = await make_pipeline(
        HIKER_AMQP_URL=rabbit_cluster.url(),
        HIKER_AMQP_QUORUM_GROUP_SIZE="3",
        HIKER_IDLE_TIMEOUT_SECONDS="600",
    )
    queues = {row["name"]: row for row in rabbit_cluster.queues()}
    for name in HIKER_QUEUES:
        assert len(queues[name]["members"]) == 3, queues[name]
    leader = rabbit_cluster.node(queues[topology.CONVERSATION_INBOUND_QUEUE]["leader"])
    on_leader = [name for name in rabbit_cluster.connections_on(leader) if "hiker-" in name]
    assert on_leader, "no service connected to the leader: stopping it would prove little"

    users = [f"1555820{n:04d}" for n in range(120)]
    accepted: list[str] = []
    refused = 0

    async def write(user: str) -> None:
        nonlocal refused
        body = encode(webhook_body(messages_change([text_message(user, "hello")])))
        _, not_ok = await post_until_accepted(pipeline, body, within=180)
        refused += not_ok
        accepted.append(user)

    async def traffic() -> None:
        for start in range(0, len(users), 4):
            await asyncio.gather(*(write(user) for user in users[start : start + 4]))
            await asyncio.sleep(0.05)

    writing = asyncio.create_task(traffic())
    try:

        async def under_way() -> bool:
            return len(accepted) >= 30

        await wait_until(under_way, 120, "the first webhooks to be accepted")
        await asyncio.to_thread(rabbit_cluster.stop, leader)
        await writing
    finally:
        writing.cancel()

    async def all_served() -> bool:
        return all([await pipeline.texts(user) for user in users])

    await wait_until(all_served, 240, "a reply to every webhook answered 200")
    await asyncio.sleep(2.0)  # time for a doubled reply to show
    doubled = {u: texts for u in users if (texts := await pipeline.texts(u)) != [REPLY]}
    assert not doubled
    assert sorted(accepted) == sorted(users)

    survivors = [node for node in rabbit_cluster.nodes if node.name in rabbit_cluster.running]
    connection = await connect(rabbit_cluster.url(survivors))
    try:
        channel = await connection.channel()
        poison = await channel.declare_queue(topology.POISON_QUEUE, passive=True)
        assert poison.declaration_result.message_count == 0
    finally:
        await connection.close()
    for service in ("ingress", "conversation", "sender"):
        name = "ingress-ops" if service == "ingress" else service
        assert await ready(pipeline, name), f"{service} is not ready on the nodes left"

    # The node comes back and rejoins; its queues' replicas catch up.
    await asyncio.to_thread(rabbit_cluster.start, leader)
    rows = {row["name"]: row for row in rabbit_cluster.queues()}
    assert len(rows[topology.CONVERSATION_INBOUND_QUEUE]["members"]) == 3
