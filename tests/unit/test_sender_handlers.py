"""The sender's decisions on fakes: sent, duplicate, busy, paced, retried, parked, in doubt."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from redis import exceptions as redis_exceptions

from hiker.core.actions import Document, MarkRead, Text
from hiker.core.claims import ClaimState
from hiker.core.contracts import MessageSent, SendMessage, SendParked
from hiker.core.errors import RetryLater
from hiker.core.keys import Keys
from hiker.sender.handlers import SendHandler
from hiker.sender.metrics import SenderMetrics
from hiker.sender.retry import GraphOutcome
from tests.fakes import Clock, FakePacer, InMemoryClaims, Published, ScriptedGraph

COMMAND = SendMessage(
    idempotency_key="reply:wamid.IN1",
    phone_number_id="100000000000001",
    to="15550001111",
    actions=(Text(body="hello to you too"),),
    kind="reply",
    correlation_id="wamid.IN1",
)
REPLY_WITHOUT_RECEIPT = COMMAND.model_copy(
    update={"actions": (Text(body="one"), Text(body="two")), "keys": ("k:1", "k:2")}
)
DEADLINE = 12.0
MAX_ATTEMPTS = 3


class World:
    def __init__(self, graph: ScriptedGraph | None = None, pacer: FakePacer | None = None) -> None:
        self.clock = Clock()
        self.claims = InMemoryClaims(self.clock, lease_seconds=15, done_ttl_seconds=3600)
        self.graph = graph or ScriptedGraph()
        self.pacer = pacer or FakePacer()
        self.pacer.clock = self.clock
        self.published = Published()
        self.keys = Keys("t:")
        self.registry = CollectorRegistry()
        self.handler = SendHandler(
            graph=self.graph,
            pacer=self.pacer,
            claims=self.claims,
            keys=self.keys,
            schedule_retry=self.published.retry,
            park=self.published.park,
            metrics=SenderMetrics(self.registry),
            outcomes=self.published,
            max_attempts=MAX_ATTEMPTS,
            call_deadline_seconds=DEADLINE,
            clock=self.clock,
            random_unit=lambda: 0.5,
        )

    @property
    def record(self) -> bytes | None:
        return self.claims.get(self.keys.sent(COMMAND.phone_number_id, COMMAND.idempotency_key))

    def counted(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


async def test_an_accepted_send_is_recorded_with_graphs_id_and_never_sent_again() -> None:
    world = World()
    await world.handler.handle(COMMAND, 1)
    await world.handler.handle(COMMAND, 1)  # redelivered
    assert len(world.graph.calls) == 1
    assert world.record == b"wamid:wamid.OUT1"
    assert world.counted("hiker_sends_deduplicated_total") == 1
    assert world.counted("hiker_messages_sent_total", kind="reply") == 1


async def test_a_send_claimed_by_a_live_sender_is_retried_later() -> None:
    world = World()
    await world.claims.claim(world.keys.sent(COMMAND.phone_number_id, COMMAND.idempotency_key))
    with pytest.raises(RetryLater):
        await world.handler.handle(COMMAND, 1)
    assert world.graph.calls == []


async def test_a_paced_send_waits_for_its_slot_before_the_call_begins() -> None:
    world = World(pacer=FakePacer(wait_us=12_500))
    await world.handler.handle(COMMAND, 1)
    assert world.pacer.waited == [12_500]
    assert len(world.graph.calls) == 1


async def test_a_slot_further_out_than_a_claim_is_held_is_waited_for_in_a_delay_queue() -> None:
    # The 13th send to one user within a burst: 18 s to wait, the claim's lease is 15 s.
    world = World(pacer=FakePacer(wait_us=18_000_000))
    await world.handler.handle(COMMAND, 3)
    assert world.graph.calls == []
    assert world.pacer.waited == []  # nothing slept in hand
    [(deferred, attempt, delay_ms)] = world.published.retries
    [slot] = world.pacer.reserved
    assert (deferred, attempt) == (COMMAND, 3)  # not a failed attempt
    assert world.published.paced_until == [slot]
    assert 15_000 < delay_ms <= 18_000  # never past its slot: what is left is checked later
    assert world.record is None  # the claim is released meanwhile
    assert world.counted("hiker_sends_deferred_total") == 1

    world.clock.advance(delay_ms / 1000)  # back from the delay queue, a little early
    await world.handler.handle(COMMAND, 3, paced_until_us=slot)
    assert world.pacer.reserved == [slot]  # counted against the rates once only
    assert world.pacer.waited == [slot - round(world.clock() * 1_000_000)]
    assert len(world.graph.calls) == 1
    assert world.record == b"wamid:wamid.OUT1"


async def test_a_deferred_send_back_far_too_early_keeps_its_slot_and_waits_again() -> None:
    world = World(pacer=FakePacer(wait_us=2_000_000_000))  # past the top of the ladder
    await world.handler.handle(REPLY_WITHOUT_RECEIPT, 1)
    [slot] = world.pacer.reserved
    [(_, _, first_delay)] = world.published.retries
    assert first_delay <= 900_000  # the ladder's top: it will be back before its slot
    world.clock.advance(first_delay / 1000)
    await world.handler.handle(REPLY_WITHOUT_RECEIPT, 1, paced_until_us=slot)
    assert world.pacer.reserved == [slot]
    assert world.published.paced_until == [slot, slot]
    assert world.graph.calls == []


async def test_a_claim_lost_while_waiting_for_its_slot_is_busy_not_a_bug() -> None:
    world = World(pacer=FakePacer(wait_us=1_000_000))

    async def stalled_wait(_: int | None) -> None:
        world.clock.advance(16)  # an event loop stalled past the claim's lease

    world.pacer.wait = stalled_wait  # type: ignore[method-assign]
    with pytest.raises(RetryLater):
        await world.handler.handle(COMMAND, 1)
    assert world.graph.calls == []


async def test_a_transient_failure_waits_in_a_retry_queue_and_frees_the_key() -> None:
    world = World(ScriptedGraph(GraphOutcome(503, error_code=2)))
    await world.handler.handle(COMMAND, 1)
    [(command, attempt, delay_ms)] = world.published.retries
    assert (command, attempt) == (COMMAND, 2)
    assert delay_ms >= 250
    assert world.record is None  # the retried copy may send
    await world.handler.handle(COMMAND, 2)
    assert world.record == b"wamid:wamid.OUT2"


async def test_retries_run_out_into_the_parked_queue() -> None:
    world = World(ScriptedGraph(GraphOutcome(None, failure="timeout")))
    await world.handler.handle(COMMAND, MAX_ATTEMPTS)
    [(_, why)] = world.published.parked
    assert (why.reason, why.graph_status, why.attempt) == ("retries_exhausted", "timeout", 3)
    assert world.published.retries == []


async def test_a_permanent_failure_is_parked_with_graphs_error() -> None:
    error = {"code": 190, "message": "Error validating access token"}
    world = World(ScriptedGraph(GraphOutcome(401, error_code=190), error=error))
    await world.handler.handle(COMMAND, 1)
    [(_, why)] = world.published.parked
    assert (why.reason, why.graph_code, why.graph_error) == ("permanent", "190", error)
    assert why.parked_at == world.clock()
    assert world.counted("hiker_messages_parked_total", code="190") == 1
    assert world.record is None  # replayable once the token is renewed


async def test_a_send_whose_sender_died_inside_the_call_is_parked_in_doubt_not_resent() -> None:
    world = World()
    dead = await world.claims.claim(
        world.keys.sent(COMMAND.phone_number_id, COMMAND.idempotency_key)
    )
    await dead.begin_call(DEADLINE)  # and then its process was killed
    with pytest.raises(RetryLater):  # within the deadline it may still report back
        await world.handler.handle(COMMAND, 1)
    world.clock.advance(DEADLINE + 1)
    await world.handler.handle(COMMAND, 1)
    assert world.graph.calls == []
    [(_, why)] = world.published.parked
    assert (why.reason, why.graph_code) == ("in_doubt", "unknown")
    assert world.record is None  # settled: a person's replay may send it


async def test_a_park_in_doubt_refused_leaves_it_in_doubt_never_free_to_send() -> None:
    world = World()
    dead = await world.claims.claim(
        world.keys.sent(COMMAND.phone_number_id, COMMAND.idempotency_key)
    )
    await dead.begin_call(DEADLINE)
    world.clock.advance(DEADLINE + 1)
    world.published.failing = ConnectionError("broker away")
    with pytest.raises(ConnectionError):
        await world.handler.handle(COMMAND, 1)
    world.published.failing = None
    world.clock.advance(60)  # past the settler's lease too
    state = (
        await world.claims.claim(world.keys.sent(COMMAND.phone_number_id, COMMAND.idempotency_key))
    ).state
    assert state is ClaimState.IN_DOUBT
    assert world.graph.calls == []


async def test_redis_refusing_the_record_after_graph_accepted_never_releases_the_key() -> None:
    world = World()
    oom = redis_exceptions.OutOfMemoryError("command not allowed", status_code="OOM")

    async def redis_fills_up() -> None:
        world.claims.fail_next(3, oom)

    world.graph.after_call = redis_fills_up
    await world.handler.handle(COMMAND, 1)  # held until Redis records it
    assert world.record == b"wamid:wamid.OUT1"
    await world.handler.handle(COMMAND, 1)
    assert len(world.graph.calls) == 1
    assert world.published.parked == world.published.retries == []


async def test_a_failure_before_the_call_frees_the_key_for_the_redelivery() -> None:
    world = World(pacer=FakePacer(wait_us=1000))

    async def failing_wait(_: int | None) -> None:
        raise ConnectionError("Redis away while pacing")

    world.pacer.wait = failing_wait  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await world.handler.handle(COMMAND, 1)
    assert world.graph.calls == []
    state = (
        await world.claims.claim(world.keys.sent(COMMAND.phone_number_id, COMMAND.idempotency_key))
    ).state
    assert state is ClaimState.CLAIMED


REPLY = SendMessage(
    idempotency_key="reply:wamid.IN2",
    phone_number_id="100000000000001",
    to="15550001111",
    actions=(
        MarkRead(message_id="wamid.IN2", typing=True),
        Text(body="Here is the price list"),
        Document(link="https://example.com/p.pdf", filename="p.pdf"),
        Text(body="Anything else?"),
    ),
    keys=("read:wamid.IN2", "reply:wamid.IN2", "reply:wamid.IN2#1", "reply:wamid.IN2#2"),
    kind="reply",
    correlation_id="wamid.IN2",
    origin_received_at=Clock().now,
)


async def test_a_reply_goes_out_in_order_receipt_first() -> None:
    world = World()
    await world.handler.handle(REPLY, 1)
    assert world.graph.calls == list(REPLY.actions)
    assert world.counted("hiker_read_receipts_total", outcome="sent") == 1


async def test_a_failure_mid_reply_holds_back_the_rest_until_it_goes() -> None:
    world = World(
        ScriptedGraph(
            GraphOutcome(200, accepted=True),
            GraphOutcome(200, message_id="m1"),
            GraphOutcome(503, error_code=2),
        )
    )
    await world.handler.handle(REPLY, 1)
    assert [type(a) for a in world.graph.calls] == [MarkRead, Text, Document]
    [(rest, attempt, _)] = world.published.retries
    assert (rest.actions, attempt) == (REPLY.actions[2:], 2)
    await world.handler.handle(rest, attempt)  # back from its retry queue
    assert world.graph.calls[3:] == list(REPLY.actions[2:])
    await world.handler.handle(REPLY, 1)  # and a late redelivery of the whole reply
    assert len(world.graph.calls) == 5  # sends nothing again


async def test_a_permanent_failure_mid_reply_parks_the_rest_in_order() -> None:
    world = World(
        ScriptedGraph(
            GraphOutcome(200, accepted=True),
            GraphOutcome(200, message_id="m1"),
            GraphOutcome(400, error_code=131053),
        )
    )
    await world.handler.handle(REPLY, 1)
    [(rest, why)] = world.published.parked
    assert rest.actions == REPLY.actions[2:]
    assert rest.action_key(0) == "reply:wamid.IN2#1"
    assert (why.reason, why.graph_code) == ("permanent", "131053")
    assert len(world.graph.calls) == 3  # "Anything else?" waits with the document


async def test_a_stale_or_refused_receipt_is_dropped_and_the_reply_goes_on() -> None:
    world = World()
    world.clock.advance(30)  # the webhook came 30 s ago: a receipt now would mean nothing
    await world.handler.handle(REPLY, 1)
    assert MarkRead not in [type(a) for a in world.graph.calls]
    assert len(world.graph.calls) == 3
    assert world.counted("hiker_read_receipts_total", outcome="stale") == 1
    refused = World(ScriptedGraph(GraphOutcome(500, error_code=1)))
    await refused.handler.handle(REPLY, 1)
    assert refused.published.retries == []  # never retried past its use
    assert len(refused.graph.calls) == 4
    assert refused.counted("hiker_read_receipts_total", outcome="failed") == 1


async def test_every_action_sent_and_every_park_is_told_before_the_command_is_done() -> None:
    world = World(
        ScriptedGraph(
            GraphOutcome(200, accepted=True),
            GraphOutcome(200, message_id="m1"),
            GraphOutcome(400, error_code=131053),
        )
    )
    await world.handler.handle(REPLY, 1)
    sent, parked = world.published.outcomes
    assert isinstance(sent, MessageSent)
    assert (sent.idempotency_key, sent.graph_message_id, sent.text) == (
        "reply:wamid.IN2",
        "m1",
        "Here is the price list",
    )
    assert isinstance(parked, SendParked)
    assert (parked.idempotency_key, parked.graph_code) == ("reply:wamid.IN2#1", "131053")
    assert (parked.action_type, parked.text) == ("document", None)  # no caption
