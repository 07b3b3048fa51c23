"""Work handed to a consumer before it starts, through the services' own code: contracts from
``hiker.core.contracts`` published with ``hiker.core.broker.Broker``, and conversation state
recorded with conversation's own store and claims, as the service records a message.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from benchmarks import bodies
from benchmarks.isolation import REDIS_URL

if TYPE_CHECKING:
    from hiker.core.broker import Broker
    from hiker.core.contracts import Contract, IdleTimerStarted
    from hiker.core.topology import QueueSpec

# A contract to publish, with its message id and correlation id.
Published = tuple["Contract", str, str]
_WINDOW = 2000  # publishes or Redis commands in flight at once


async def _broker(url: str) -> Broker:
    from hiker.core import topology
    from hiker.core.broker import Broker

    broker = Broker(url, client_name="bench-publisher")
    await broker.connect(topology.Topology(topology.EXCHANGES))
    return broker


async def publish_contracts(
    url: str, exchange: str, routing_key: str, count: int, make: Callable[[int], Published]
) -> None:
    """Publish ``make(0..count-1)`` with confirms, ``_WINDOW`` at a time; ``make`` gives the
    contract, its message id and its correlation id."""
    broker = await _broker(url)
    try:
        for start in range(0, count, _WINDOW):
            batch = [make(i) for i in range(start, min(start + _WINDOW, count))]
            await asyncio.gather(
                *(
                    broker.publish(
                        exchange,
                        routing_key,
                        contract.to_bytes(),
                        type_name=contract.type_name(),
                        message_id=message_id,
                        correlation_id=correlation_id,
                    )
                    for contract, message_id, correlation_id in batch
                )
            )
    finally:
        await broker.close()


async def publish_sends(url: str, count: int) -> None:
    """``count`` SendMessage commands, as conversation publishes them."""
    from hiker.core import topology
    from hiker.core.contracts import SendMessage

    run = secrets.token_hex(4)

    def command(i: int) -> Published:
        sent = SendMessage(
            idempotency_key=f"bench:{run}:{i}",
            phone_number_id=bodies.PHONE_NUMBER_ID,
            to=f"1555{i:09d}",
            text="hello to you too",
            kind="reply",
            correlation_id=f"wamid.BENCH{run}{i}",
            origin_received_at=time.time(),
        )
        return sent, sent.idempotency_key, sent.correlation_id

    await publish_contracts(url, topology.COMMANDS_EXCHANGE, topology.RK_SEND, count, command)


async def publish_messages(url: str, count: int) -> None:
    """``count`` MessageReceived ``hello`` events from as many users, as ingress publishes them."""
    from hiker.core import topology
    from hiker.core.contracts import MessageReceived

    run = secrets.token_hex(4)

    def message(i: int) -> Published:
        event = MessageReceived(
            wamid=f"wamid.BENCH{run}{i}",
            phone_number_id=bodies.PHONE_NUMBER_ID,
            user=f"1555{i:09d}",
            message_type="text",
            text="hello",
            timestamp=int(time.time()),
            received_at=time.time(),
        )
        return event, event.wamid, event.wamid

    await publish_contracts(
        url, topology.INBOUND_EXCHANGE, f"{topology.RK_MESSAGE_PREFIX}.text", count, message
    )


async def record_messages(
    redis_prefix: str,
    phone_number_id: str,
    users: Sequence[str],
    wamids: Sequence[str],
    *,
    received_at: float,
    idle_timeout: float,
) -> None:
    """Record ``wamids[i]`` as ``users[i]``'s latest message the way conversation does: the
    store's record step run by the message's claim, then the claim confirmed.

    This is the benchmark's only use of conversation's internals (so that a rename touches one
    place); whatever the store keeps in Redis is then exactly what the service would keep.
    """
    from hiker.conversation.state import ConversationStore
    from hiker.core.claims import ClaimStore
    from hiker.core.keys import Keys
    from hiker.core.redis_store import connect_redis

    redis = connect_redis(REDIS_URL)
    keys = Keys(redis_prefix)
    store = ConversationStore(redis, keys, idle_timeout_seconds=idle_timeout)
    # Short-lived claims: the run's keys go with its prefix anyway; these expire on their own.
    claims = ClaimStore(redis, lease_seconds=60, done_ttl_seconds=2 * 3600)

    # Revisions measured with --baseline before the step's rename called it record_inbound.
    record_step = getattr(store, "record_step", None) or store.record_inbound  # type: ignore[attr-defined]

    async def record(user: str, wamid: str) -> None:
        step = record_step(phone_number_id, user, wamid, received_at, int(received_at))
        claim = await claims.claim(keys.claim(phone_number_id, user, wamid), step=step)
        await claim.confirm()

    try:
        for start in range(0, len(users), _WINDOW):
            end = min(start + _WINDOW, len(users))
            await asyncio.gather(*(record(users[i], wamids[i]) for i in range(start, end)))
    finally:
        await redis.aclose()


async def publish_timers(
    url: str, spec: QueueSpec, timers: Sequence[IdleTimerStarted], *, linger: float = 0.02
) -> float:
    """Publish ``timers`` into the wait queue ``spec`` as conversation schedules them: those
    falling due within one publish ``linger`` of each other share a bundle, which expires when
    the last of them is due. Returns the least time any had left before its due time."""
    from hiker.core import bundles

    broker = await _broker(url)
    min_margin = float("inf")
    ordered = sorted(timers, key=lambda t: t.due_at)
    groups: list[list[IdleTimerStarted]] = []
    for timer in ordered:
        if groups and timer.due_at - groups[-1][0].due_at < linger:
            groups[-1].append(timer)
        else:
            groups.append([timer])
    try:
        await broker.declare_queue(spec)
        for start in range(0, len(groups), _WINDOW):
            stamp = time.time()
            batch = groups[start : start + _WINDOW]
            min_margin = min(min_margin, min(group[0].due_at for group in batch) - stamp)
            await asyncio.gather(
                *(
                    broker.publish(
                        "",
                        spec.name,
                        bundles.encode([timer.to_bytes() for timer in group]),
                        type_name=group[0].type_name(),
                        headers={bundles.BUNDLE_HEADER: len(group)} if len(group) > 1 else {},
                        expiration_ms=max(1, int((group[-1].due_at - stamp) * 1000)),
                    )
                    for group in batch
                )
            )
    finally:
        await broker.close()
    return min_margin
