"""Sender against a real, private Redis that goes away right after Graph accepted a message.

The send happened; losing Redis for a moment must not turn it into a send "in doubt" (parked for
a person) nor into a second send. The handler is built from its real parts except Graph, which
is a stand-in that accepts the message and then kills Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from prometheus_client import CollectorRegistry

from hiker.core.actions import AnyAction
from hiker.core.claims import Claims, ClaimState, ClaimStore
from hiker.core.contracts import SendMessage
from hiker.core.errors import RetryLater
from hiker.core.keys import Keys
from hiker.core.parked_headers import ParkedHeaders
from hiker.core.redis_store import connect_redis
from hiker.sender.graph import GraphCall
from hiker.sender.handlers import Graph, Park, ScheduleRetry, SendHandler
from hiker.sender.metrics import SenderMetrics
from hiker.sender.pacing import Paced
from hiker.sender.retry import GraphOutcome
from tests.integration.conftest import PrivateRedis

pytestmark = pytest.mark.integration

COMMAND = SendMessage(
    idempotency_key="reply:wamid.RECORDS1",
    phone_number_id="100000000000001",
    to="15550001234",
    text="hello to you too",
    kind="reply",
    correlation_id="wamid.RECORDS1",
)


class AcceptThen:
    """Graph stand-in: accepts every message, then runs ``after`` (here: Redis goes away)."""

    def __init__(self, after: Callable[[], Awaitable[None]]) -> None:
        self.after = after
        self.calls = 0

    async def send(
        self,
        phone_number_id: str,
        to: str,
        action: AnyAction,
        *,
        callback_data: str | None = None,
        marketing: bool = False,
    ) -> GraphCall:
        self.calls += 1
        await self.after()
        return GraphCall(GraphOutcome(200, message_id=f"wamid.SENT{self.calls}"), 0.01)


class NoPacing:
    async def claim(
        self,
        claims: Claims,
        key: str,
        phone_number_id: str,
        user: str,
        *,
        reserved_us: int | None = None,
        call_within: float | None = None,
    ) -> Paced:
        return Paced(await claims.claim(key, call_within=call_within))

    async def wait(self, reserved_us: int | None) -> None:
        return None


def send_handler(
    graph: Graph,
    claims: ClaimStore,
    keys: Keys,
    *,
    schedule_retry: ScheduleRetry,
    park: Park,
) -> SendHandler:
    """The sender's handler from its real parts, with ``graph`` standing in for Meta."""
    return SendHandler(
        graph=graph,
        pacer=NoPacing(),
        claims=claims,
        keys=keys,
        schedule_retry=schedule_retry,
        park=park,
        metrics=SenderMetrics(CollectorRegistry()),
        max_attempts=5,
        call_deadline_seconds=10,
    )


async def test_a_redis_outage_right_after_graph_accepted_neither_parks_nor_resends(
    private_redis: PrivateRedis,
) -> None:
    parked: list[ParkedHeaders] = []
    retried: list[int] = []

    async def bring_back_later() -> None:
        private_redis.kill()

        async def restart() -> None:
            await asyncio.sleep(1.5)
            await private_redis.start()

        restarts.append(asyncio.create_task(restart()))

    restarts: list[asyncio.Task[None]] = []
    graph = AcceptThen(bring_back_later)
    redis = connect_redis(private_redis.url)

    async def park(command: SendMessage, why: ParkedHeaders) -> None:
        parked.append(why)

    async def schedule_retry(command: SendMessage, attempt: int, delay_ms: int) -> None:
        retried.append(attempt)

    keys = Keys("test:")
    claims = ClaimStore(redis, lease_seconds=12, done_ttl_seconds=60)
    handler = send_handler(graph, claims, keys, schedule_retry=schedule_retry, park=park)
    try:
        await handler.handle(COMMAND, 1)
        await asyncio.gather(*restarts)
        # Recorded as sent, with Graph's id: a redelivery is a duplicate, not a send in doubt.
        assert (
            await redis.get(keys.sent(COMMAND.phone_number_id, COMMAND.idempotency_key))
            == b"wamid:wamid.SENT1"
        )
        assert (
            await claims.claim(keys.sent(COMMAND.phone_number_id, COMMAND.idempotency_key))
        ).state is ClaimState.DONE
        await handler.handle(COMMAND, 1)
        assert graph.calls == 1
        assert parked == []
        assert retried == []
    finally:
        await redis.aclose()


class SlowGraph:
    """Graph stand-in that takes the message at once and answers ``answer_after`` later."""

    def __init__(self, answer_after: float) -> None:
        self.answer_after = answer_after
        self.calls = 0
        self.called = asyncio.Event()

    async def send(
        self,
        phone_number_id: str,
        to: str,
        action: AnyAction,
        *,
        callback_data: str | None = None,
        marketing: bool = False,
    ) -> GraphCall:
        self.calls += 1
        self.called.set()
        await asyncio.sleep(self.answer_after)
        return GraphCall(GraphOutcome(200, message_id=f"wamid.SLOW{self.calls}"), 0.01)


async def test_a_consumer_cancelled_during_the_graph_call_does_not_send_twice(
    redis_url: str, redis_prefix: str
) -> None:
    """aiormq cancels in-flight consumers when their channel closes (a broker restart); the
    broker then redelivers the command. The call under way must still finish and be recorded,
    so that the redelivery is a duplicate rather than a second message to the user."""
    graph = SlowGraph(answer_after=0.3)
    redis = connect_redis(redis_url)

    async def no_publish(*_: object) -> None:
        raise AssertionError("neither a retry nor parking was expected")

    keys = Keys(redis_prefix)
    claims = ClaimStore(redis, lease_seconds=12, done_ttl_seconds=60)
    handler = send_handler(graph, claims, keys, schedule_retry=no_publish, park=no_publish)
    try:
        consumer = asyncio.create_task(handler.handle(COMMAND, 1))
        await graph.called.wait()
        consumer.cancel()  # the channel closed while Meta was being called
        with pytest.raises(asyncio.CancelledError):
            await consumer
        # The redelivery arrives once the broker is back; the first call is still finishing.
        for _ in range(50):
            try:
                await handler.handle(COMMAND, 1)
                break
            except RetryLater:
                await asyncio.sleep(0.1)
        assert graph.calls == 1
        assert (
            await redis.get(keys.sent(COMMAND.phone_number_id, COMMAND.idempotency_key))
            == b"wamid:wamid.SLOW1"
        )
    finally:
        await redis.aclose()
