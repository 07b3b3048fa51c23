"""Listing and replaying ``hiker.sender.parked``, on the shared held-queue reader."""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from aio_pika.abc import AbstractIncomingMessage
from redis import exceptions as redis_exceptions

from hiker.core import topology
from hiker.core.claims import is_done
from hiker.core.keys import Keys
from hiker.core.redis_store import RedisClient, RedisTarget, connect_redis
from hiker.tools.heldqueue import (
    Address,
    Copy,
    HeldQueue,
    Listing,
    Replayer,
    ToolError,
    list_queue,
    reading,
    replaying,
)
from hiker.tools.parked.model import ParkedReplay, ParkedSend

DEFAULT_LIST_LIMIT: Final = 50
# Where a replayed send goes: the sender's outbox, by the same route conversation uses.
OUTBOX_ROUTE: Final = Address(topology.COMMANDS_EXCHANGE, topology.RK_SEND)


async def already_sent(
    redis: RedisClient, keys: Keys, phone_number_id: str, idempotency_key: str
) -> bool:
    """Whether the sender recorded ``idempotency_key`` as sent (not merely claimed in flight)."""
    key = keys.sent(phone_number_id, idempotency_key)
    return await is_done(redis, key, keys.legacy(key))


async def list_parked(
    amqp_url: str, *, limit: int = DEFAULT_LIST_LIMIT, reasons: Collection[str] = ()
) -> Listing[ParkedSend]:
    """Up to ``limit`` parked messages matching ``reasons``, oldest first; the queue unchanged."""
    return await list_queue(
        amqp_url,
        topology.SENDER_PARKED_QUEUE,
        ParkedSend.from_message,
        lambda send: send.matches(reasons),
        limit,
    )


async def replay_parked(
    amqp_url: str,
    redis_target: RedisTarget | str,
    keys: Keys,
    *,
    reasons: Collection[str] = (),
    limit: int | None = None,
) -> ParkedReplay:
    """Publish matching parked sends to the outbox again (attempt 1), at most ``limit`` of them.

    See the package docstring for what happens on a crash and why nothing is lost or sent twice.
    """
    report = ParkedReplay()
    if isinstance(redis_target, str):
        redis_target = RedisTarget(redis_target)
    redis = connect_redis(redis_target)
    try:
        async with (
            reading(amqp_url, [topology.SENDER_PARKED_QUEUE]) as queues,
            replaying(amqp_url, [OUTBOX_ROUTE.exchange]) as replayer,
        ):
            parked = queues[topology.SENDER_PARKED_QUEUE]
            try:
                async for message in parked.messages():
                    await _replay_one(parked, message, replayer, redis, keys, reasons, report)
                    if limit is not None and report.replayed >= limit:
                        break
            finally:
                report.left_parked += parked.held
    except (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError) as exc:
        raise ToolError(
            f"Redis not usable at {redis_target.shown()} ({type(exc).__name__}); nothing was lost"
        ) from None
    finally:
        await redis.aclose()
    return report


async def _replay_one(
    parked: HeldQueue,
    message: AbstractIncomingMessage,
    replayer: Replayer,
    redis: RedisClient,
    keys: Keys,
    reasons: Collection[str],
    report: ParkedReplay,
) -> None:
    """Replay ``message`` if it matches; one that does not stays held (and goes back)."""
    send = ParkedSend.from_message(message)
    if not send.matches(reasons):
        return
    command = send.command
    if command is None:
        report.unreadable += 1
        return
    # A parked remainder of a reply starts at the action that failed: its key is what counts.
    if await already_sent(redis, keys, command.phone_number_id, command.action_key(0)):
        await parked.remove(message)
        report.already_sent += 1
        return
    copy = Copy(
        OUTBOX_ROUTE,
        message.body,
        type_name=command.type_name(),
        message_id=command.idempotency_key,
        correlation_id=command.correlation_id,
        # Fresh headers: a new first attempt, and none of the parked queue's counters.
        headers={
            topology.HEADER_ATTEMPT: 1,
            topology.HEADER_CORRELATION_ID: command.correlation_id,
        },
    )
    await replayer.replay(parked, message, copy)
    report.replayed += 1
