"""``hiker events``' handlers on fakes: what is retried, parked or done, and the stamp's order."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, generate_latest

from hiker.core.contracts import MessageReceived
from hiker.events.client import Posted
from hiker.events.delivery import Answer
from hiker.events.handlers import DeliveryHandler, StampHandler
from hiker.events.metrics import EventsMetrics
from hiker.events.model import BackendEvent, from_message
from hiker.events.parking import ParkedEvent
from tests.support import metric_value

ENDPOINT = "crm.example.com-1a2b3c4d"
DAY = 24 * 3600.0


def event(n: int = 0) -> BackendEvent:
    return from_message(
        MessageReceived(
            wamid=f"wamid.{n}",
            phone_number_id="100000000000001",
            user="15550001234",
            message_type="text",
            text="hi",
            timestamp=1_767_225_600,
            received_at=1_767_225_600.0,
        )
    ).stamped(n + 1)


class Poster:
    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.bodies: list[bytes] = []

    async def post(self, body: bytes, event_id: str) -> Posted:
        self.bodies.append(body)
        return Posted(self.answers.pop(0), 0.01)


class Outbox:
    def __init__(self) -> None:
        self.retries: list[tuple[str, BackendEvent, int, float, int]] = []
        self.parked: list[tuple[BackendEvent, ParkedEvent]] = []

    async def retry(
        self,
        endpoint: str,
        event: BackendEvent,
        *,
        attempt: int,
        first_attempt_at: float,
        delay_ms: int,
    ) -> None:
        self.retries.append((endpoint, event, attempt, first_attempt_at, delay_ms))

    async def park(self, event: BackendEvent, why: ParkedEvent) -> None:
        self.parked.append((event, why))


def handler(poster: Poster, outbox: Outbox, now: float = 5000.0) -> DeliveryHandler:
    metrics = EventsMetrics(CollectorRegistry(), [ENDPOINT])
    return DeliveryHandler(ENDPOINT, poster, outbox, metrics, window_seconds=DAY, clock=lambda: now)


async def test_a_503_is_retried_as_the_next_attempt_keeping_the_first_attempts_time() -> None:
    outbox = Outbox()
    await handler(Poster(Answer(503)), outbox).deliver(event(), attempt=2, first_attempt_at=4000.0)
    ((endpoint, retried, attempt, first, delay_ms),) = outbox.retries
    assert (endpoint, retried, attempt, first, delay_ms) == (ENDPOINT, event(), 3, 4000.0, 2000)
    assert outbox.parked == []


async def test_a_first_attempt_starts_the_window_now() -> None:
    outbox = Outbox()
    await handler(Poster(Answer(None, failure="timeout")), outbox, now=7000.0).deliver(
        event(), attempt=1, first_attempt_at=None
    )
    assert outbox.retries[0][3] == 7000.0


async def test_a_410_parks_the_event_with_why() -> None:
    outbox = Outbox()
    await handler(Poster(Answer(410)), outbox).deliver(event(), attempt=1, first_attempt_at=None)
    ((parked, why),) = outbox.parked
    assert parked == event()
    assert why == ParkedEvent(ENDPOINT, "permanent", "410", 1, 5000.0)
    assert outbox.retries == []


async def test_what_is_posted_is_the_event_as_stamped() -> None:
    poster, outbox = Poster(Answer(204)), Outbox()
    await handler(poster, outbox).deliver(event(), attempt=1, first_attempt_at=None)
    assert poster.bodies == [event().to_bytes()]
    assert outbox.retries == outbox.parked == []


async def test_parked_headers_round_trip_and_broker_dead_letters_are_read() -> None:
    why = ParkedEvent(ENDPOINT, "retries_exhausted", "503", 9, 1_767_225_600.125)
    assert ParkedEvent.from_headers(why.to_headers()) == why
    dead = ParkedEvent.from_headers(
        {"x-death": [{"queue": f"hiker.events.deliver.{ENDPOINT}", "reason": "maxlen"}]}
    )
    assert (dead.endpoint, dead.reason, dead.status) == (ENDPOINT, "maxlen", "none")


class SlowFirstSequences:
    """Gives seqs in call order, but answers the first call last (another connection, say)."""

    def __init__(self) -> None:
        self.next = 0
        self.gate = asyncio.Event()

    async def seq_of(self, phone_number_id: str, user: str, event_id: str) -> int:
        self.next += 1
        seq = self.next
        if seq == 1:
            await self.gate.wait()
        return seq


class Forwarded:
    def __init__(self) -> None:
        self.events: list[BackendEvent] = []

    async def forward(self, event: BackendEvent) -> None:
        self.events.append(event)


async def test_a_conversations_events_take_their_seq_in_delivery_order() -> None:
    sequences, forwarded = SlowFirstSequences(), Forwarded()
    registry = CollectorRegistry()
    stamp = StampHandler(sequences, forwarded, EventsMetrics(registry, [ENDPOINT]))
    first = MessageReceived(
        wamid="wamid.first",
        phone_number_id="100000000000001",
        user="15550001234",
        message_type="text",
        timestamp=1,
        received_at=1.0,
    )
    second = first.model_copy(update={"wamid": "wamid.second"})
    tasks = [asyncio.create_task(stamp.on_message(m)) for m in (first, second)]
    await asyncio.sleep(0.01)
    # The second waits for the first: it has not asked for its seq yet.
    assert sequences.next == 1
    sequences.gate.set()
    await asyncio.gather(*tasks)
    by_wamid = {e.data["wamid"]: e.seq for e in forwarded.events}
    assert by_wamid == {"wamid.first": 1, "wamid.second": 2}
    stamped = metric_value(
        registry_text(registry), "hiker_events_stamped_total", type="message.received"
    )
    assert stamped == 2


def registry_text(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()
