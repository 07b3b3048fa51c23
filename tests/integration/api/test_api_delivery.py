"""The truth of each send in the records, against real SQLite and PostgreSQL: a status joins its
send by the send's key when Graph's answer was not recorded first, a status outweighs a park in
doubt, a price is kept once per message, and a template's late webhook changes nothing newer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from hiker.api.db import migrate
from hiker.api.db.delivery import DeliveryRecords
from hiker.api.db.engine import create_engine
from hiker.api.db.repository import RecordStore
from hiker.api.history import Outbound, Parked, Price, Status
from hiker.api.templates import Aspect, TemplateChange

pytestmark = pytest.mark.integration

NUMBER = "100000000000001"
USER = "15550001234"
FAILED = {"code": 131049, "title": "not delivered", "message": None, "details": None}


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, timeout_seconds=5)
    await migrate.upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def store(engine: AsyncEngine) -> RecordStore:
    return RecordStore(engine)


@pytest.fixture
def delivery(engine: AsyncEngine) -> DeliveryRecords:
    return DeliveryRecords(engine)


def accepted(key: str, at_us: int = 1_000, wamid: str | None = None) -> Outbound:
    """A send as ``POST /v1/messages`` records it (``wamid``: as the sender's outcome does)."""
    return Outbound(key, NUMBER, USER, "api", "template", None, at_us, wamid, "snd_1", "hash")


async def test_a_status_before_graphs_answer_names_the_send_by_its_key(store: RecordStore) -> None:
    assert await store.add_outbound(accepted("api:snd_1"))
    failed = Status("wamid.OUT1", "failed", 3_000, FAILED, callback_data="api:snd_1")
    assert await store.add_status(failed)
    (message,) = await store.messages(NUMBER, USER, 10, None)
    assert (message.public_id, message.send_id, message.current()) == (
        "wamid.OUT1",
        "snd_1",
        ("failed", FAILED),
    )
    # Graph's answer, recorded late, finds the send already named: nothing changes.
    assert not await store.add_outbound(accepted("api:snd_1", wamid="wamid.OUT1"))
    (message,) = await store.messages(NUMBER, USER, 10, None)
    assert message.current() == ("failed", FAILED)


async def test_a_status_of_a_send_not_yet_recorded_joins_it_when_it_is(
    store: RecordStore,
) -> None:
    # The status came first; the sender's outcome (with Graph's id) comes after.
    assert await store.add_status(Status("wamid.OUT2", "delivered", 3_000, callback_data="k#1"))
    reply = Outbound("k#1", NUMBER, USER, "reply", "text", "hi", 2_000, "wamid.OUT2")
    assert await store.add_outbound(reply)
    (message,) = await store.messages(NUMBER, USER, 10, None)
    assert message.current() == ("delivered", None)


@pytest.mark.parametrize("status_first", [True, False], ids=["status-first", "park-first"])
async def test_a_send_parked_in_doubt_that_meta_reports_was_sent(
    store: RecordStore, status_first: bool
) -> None:
    doubt = {"code": None, "title": "parked: in_doubt", "message": None}
    parked = Parked("reply:wamid.IN7", NUMBER, USER, "reply", 2_000, doubt, "text", "Hello!")
    delivered = Status("wamid.OUT7", "delivered", 3_000, callback_data="reply:wamid.IN7")
    if status_first:
        assert await store.add_status(delivered)
        await store.add_parked(parked)
    else:
        assert await store.add_parked(parked)
        assert await store.add_status(delivered)
    (message,) = await store.messages(NUMBER, USER, 10, None)
    assert (message.public_id, message.text, message.current()) == (
        "wamid.OUT7",
        "Hello!",
        ("delivered", None),
    )


async def test_callback_data_naming_no_send_of_ours_changes_no_message(
    store: RecordStore,
) -> None:
    assert await store.add_outbound(accepted("api:snd_1", wamid="wamid.OUT1"))
    # Another app's send on the same number, or one whose id is already taken.
    assert await store.add_status(Status("wamid.OTHER", "sent", 3_000, callback_data="theirs"))
    assert await store.add_status(Status("wamid.OTHER2", "sent", 3_000, callback_data="api:snd_1"))
    (message,) = await store.messages(NUMBER, USER, 10, None)
    assert message.public_id == "wamid.OUT1"


def price(wamid: str, type_: str = "regular") -> Price:
    return Price(wamid, NUMBER, "PMP", type_, "marketing", None, type_ == "regular", 3_000)


async def test_a_price_is_kept_once_per_message(delivery: DeliveryRecords) -> None:
    assert await delivery.add_price(price("wamid.OUT1"))
    # Meta repeats the pricing on delivered and read: the first one stands.
    assert not await delivery.add_price(price("wamid.OUT1", "free_customer_service"))
    assert await delivery.add_price(price("wamid.OUT2", "free_entry_point"))
    found = await delivery.prices_of(["wamid.OUT1", "wamid.OUT2", "wamid.NONE"])
    assert {w: (p.type, p.charged) for w, p in found.items()} == {
        "wamid.OUT1": ("regular", True),
        "wamid.OUT2": ("free_entry_point", False),
    }


def change(
    aspect: Aspect, value: str, at_us: int, template_id: str = "1689556908129832"
) -> TemplateChange:
    return TemplateChange(
        template_id, "102290129340398", "order_update", "en_US", aspect, value, at_us, 9_000,
        reason="NONE" if aspect == "status" else None,
    )  # fmt: skip


async def test_a_template_keeps_the_newest_of_each_aspect_whatever_the_order(
    delivery: DeliveryRecords,
) -> None:
    assert await delivery.add_template(change("status", "APPROVED", 1_000))
    assert await delivery.add_template(change("status", "PAUSED", 3_000))
    # Late: the approval of before the pause changes nothing.
    assert not await delivery.add_template(change("status", "APPROVED", 2_000))
    assert await delivery.add_template(change("quality", "RED", 2_500))
    assert await delivery.add_template(change("category", "MARKETING", 500))
    assert await delivery.add_template(change("status", "APPROVED", 1_000, template_id="7"))
    (paused,) = await delivery.templates(10, status="PAUSED")
    assert (paused.status, paused.quality, paused.category, paused.status_at_us) == (
        "PAUSED",
        "RED",
        "MARKETING",
        3_000,
    )
    first = await delivery.templates(1)
    rest = await delivery.templates(10, after=first[0].template_id)
    assert [t.template_id for t in first + rest] == ["1689556908129832", "7"]
    assert len(await delivery.all_templates()) == 2
