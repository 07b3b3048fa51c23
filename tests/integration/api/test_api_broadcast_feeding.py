"""The scheduler's tick against SQLite and PostgreSQL: a number fed its share of the rate
whichever replica ticks, a start in the future waited for, the rolling limit, a cancel."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from hiker.api.broadcasting import BroadcastRequest, Recipient, parse_send_key
from hiker.api.db import migrate
from hiker.api.db.broadcasts import BroadcastStore, NewBroadcast
from hiker.api.db.engine import create_engine
from hiker.api.db.feeding import Feeder, Limits
from hiker.api.history import to_us
from hiker.api.scheduler import fixed_limit
from hiker.core.actions import Template
from hiker.core.contracts import SendMessage

pytestmark = pytest.mark.integration

NUMBER = "100000000000001"
T0 = 1_800_000_000.0


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, timeout_seconds=5)
    await migrate.upgrade(engine)
    yield engine
    await engine.dispose()


class Sender:
    def __init__(self) -> None:
        self.commands: list[SendMessage] = []

    async def __call__(self, commands: Sequence[SendMessage]) -> None:
        self.commands.extend(commands)

    def seqs(self) -> list[int]:
        return [parse_send_key(c.idempotency_key)[1] for c in self.commands]  # type: ignore[index]


async def add(
    engine: AsyncEngine, key: str, users: int, *, start_at: float = T0, number: str = NUMBER
) -> str:
    request = BroadcastRequest(
        phone_number_id=number,
        name=key,
        template=Template(name="promo", language="en"),
        recipients=tuple(Recipient(f"1555{n:07d}") for n in range(users)),
    )
    broadcast_id = f"{key:0>32}"
    await BroadcastStore(engine).create(
        NewBroadcast(
            id=broadcast_id,
            idempotency_key=key,
            request_hash="h",
            request=request,
            kind="broadcast",
            start_at_us=to_us(start_at),
            created_at_us=to_us(T0),
        )
    )
    return broadcast_id


def limits(rate: float, limit: int | None = None, in_flight: int = 1000) -> Limits:
    return Limits(
        rate_per_second=rate,
        burst_seconds=1.0,
        messaging_limit=fixed_limit(limit),
        max_in_flight=in_flight,
    )


async def test_a_number_gets_its_share_whichever_replica_ticks(engine: AsyncEngine) -> None:
    await add(engine, "a", 100)
    sender = Sender()
    one, other = Feeder(engine), Feeder(engine)
    assert (await one.tick(T0, limits(10), sender)).handed == 10  # a second's worth, at most
    assert (await other.tick(T0, limits(10), sender)).handed == 0  # the same moment: none left
    assert (await other.tick(T0 + 0.5, limits(10), sender)).handed == 5
    assert (await one.tick(T0 + 60, limits(10), sender)).handed == 10  # a stall is no burst
    assert sender.seqs() == list(range(25))
    assert all(c.kind == "broadcast" for c in sender.commands)


async def test_a_later_start_waits_and_the_limit_holds_the_rest(engine: AsyncEngine) -> None:
    later = await add(engine, "b", 5, start_at=T0 + 3600)
    sender = Sender()
    feeder = Feeder(engine)
    assert (await feeder.tick(T0, limits(100, 3), sender)).handed == 0
    fed = await feeder.tick(T0 + 3600, limits(100, 3), sender)
    assert (fed.handed, fed.held_by_limit) == (3, False)
    assert (await feeder.tick(T0 + 3601, limits(100, 3), sender)).held_by_limit
    # Not a second after the day: the minute of the first sends must have left the window.
    assert (await feeder.tick(T0 + 3600 + 24 * 3600 + 1, limits(100, 3), sender)).held_by_limit
    fed = await feeder.tick(T0 + 3600 + 24 * 3600 + 60, limits(100, 3), sender)
    assert (fed.handed, fed.finished) == (2, [later])
    assert sender.seqs() == [0, 1, 2, 3, 4]


async def test_cancel_hands_nothing_more_and_cannot_be_resumed(engine: AsyncEngine) -> None:
    store = BroadcastStore(engine)
    broadcast = await add(engine, "c", 30)
    sender = Sender()
    feeder = Feeder(engine)
    await feeder.tick(T0, limits(10), sender)
    assert await store.change_state(broadcast, from_states=("running",), to_state="paused") == (
        "paused"
    )
    assert (await feeder.tick(T0 + 5, limits(10), sender)).handed == 0
    cancelled = await store.change_state(
        broadcast, from_states=("running", "paused"), to_state="cancelled"
    )
    assert cancelled == "cancelled"
    resumed = await store.change_state(broadcast, from_states=("paused",), to_state="running")
    assert resumed == "cancelled"
    assert (await feeder.tick(T0 + 10, limits(10), sender)).handed == 0
    row = await store.get(broadcast)
    assert row is not None
    assert row.counts == {"sending": 10, "cancelled": 20}
    assert len(sender.commands) == 10


async def test_no_more_in_flight_than_allowed_until_graph_answers(engine: AsyncEngine) -> None:
    store = BroadcastStore(engine)
    broadcast = await add(engine, "d", 50)
    sender = Sender()
    feeder = Feeder(engine)
    assert (await feeder.tick(T0, limits(100, in_flight=8), sender)).handed == 8
    assert (await feeder.tick(T0 + 1, limits(100, in_flight=8), sender)).handed == 0
    for seq in range(3):  # Graph answered three of them
        assert await store.advance(broadcast, seq, "accepted")
    assert (await feeder.tick(T0 + 2, limits(100, in_flight=8), sender)).handed == 3
    # Those never answered (a sender that died after Graph took them) stop counting after a
    # minute: the five of the first tick go, the three of the last still count.
    assert (await feeder.tick(T0 + 61, limits(100, in_flight=8), sender)).handed == 5
