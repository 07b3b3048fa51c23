"""The record store against real SQLite and PostgreSQL: every write idempotent, statuses kept
before their message, parked sends, pages by cursor, and the schema as the migrations make it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine

from hiker.api import history
from hiker.api.cursors import ConversationCursor, MessageCursor
from hiker.api.db import migrate
from hiker.api.db.engine import create_engine
from hiker.api.db.repository import RecordStore
from hiker.api.db.tables import messages, metadata
from hiker.api.history import Inbound, KeyState, Outbound, Parked, Status, WebhookError
from hiker.core.contracts import MessageReceived
from tests.integration.api.conftest import PostgresDatabase

pytestmark = pytest.mark.integration

NUMBER = "100000000000001"
USER = "15550001234"


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, timeout_seconds=5)
    await migrate.upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def store(engine: AsyncEngine) -> RecordStore:
    return RecordStore(engine)


def inbound(n: int, at_us: int, user: str = USER) -> Inbound:
    return Inbound(f"wamid.IN{n}", NUMBER, user, "text", f"hello {n}", at_us, name="Ana")


def reply(n: int, at_us: int, wamid: str | None = None) -> Outbound:
    return Outbound(f"reply:wamid.IN{n}", NUMBER, USER, "reply", "text", f"hi {n}", at_us, wamid)


async def test_the_schema_is_at_head_and_matches_the_models(engine: AsyncEngine) -> None:
    assert await migrate.current_revision(engine) == migrate.head_revision()
    async with engine.connect() as connection:
        differences = await connection.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
        )
    assert differences == []
    await migrate.upgrade(engine)  # at head already: nothing to do


async def test_every_record_is_written_once(store: RecordStore) -> None:
    assert await store.add_inbound(inbound(1, 1_000))
    assert not await store.add_inbound(inbound(1, 1_000))
    assert await store.add_outbound(reply(1, 2_000, "wamid.OUT1"))
    assert not await store.add_outbound(reply(1, 2_000, "wamid.OUT1"))
    assert await store.add_status(Status("wamid.OUT1", "delivered", 3_000))
    assert not await store.add_status(Status("wamid.OUT1", "delivered", 3_000))
    error = WebhookError(NUMBER, 131000, "Something went wrong", None, 4_000)
    assert await store.add_webhook_error(error)
    assert not await store.add_webhook_error(error)
    page = await store.messages(NUMBER, USER, 10, None)
    assert [(m.public_id, m.current()[0]) for m in page] == [
        ("wamid.OUT1", "delivered"),
        ("wamid.IN1", "received"),
    ]
    (conversation,) = await store.conversations(None, 10, None)
    assert conversation.message_count == 2
    assert (conversation.last_direction, conversation.last_text) == ("out", "hi 1")
    assert conversation.name == "Ana"


async def test_a_nul_in_what_a_user_wrote_is_recorded_not_refused(store: RecordStore) -> None:
    event = MessageReceived(
        wamid="wamid.NUL", phone_number_id=NUMBER, user=USER, message_type="text",
        text="a\x00b", timestamp=1, received_at=1.0, contact_name="A\x00na",
    )  # fmt: skip
    # PostgreSQL's text refuses NUL: the record would be poisoned and lost to the history.
    assert await store.add_inbound(history.inbound(event))
    (message,) = await store.messages(NUMBER, USER, 10, None)
    assert message.text == "a\ufffdb"


async def test_concurrent_deliveries_of_one_event_record_it_once(store: RecordStore) -> None:
    written = await asyncio.gather(*(store.add_inbound(inbound(7, 1_000)) for _ in range(8)))
    assert sorted(written) == [False] * 7 + [True]
    (conversation,) = await store.conversations(NUMBER, 10, None)
    assert conversation.message_count == 1


async def test_statuses_before_their_message_are_attached_when_it_comes(store: RecordStore) -> None:
    failure = {"code": 131047, "title": "Re-engagement message", "message": None}
    assert await store.add_status(Status("wamid.OUT2", "sent", 3_000))
    assert await store.add_status(Status("wamid.OUT2", "failed", 4_000, failure))
    assert await store.add_outbound(reply(2, 2_000, "wamid.OUT2"))
    (message,) = await store.messages(NUMBER, USER, 10, None)
    assert message.current() == ("failed", failure)
    assert [s.status for s in message.statuses] == ["sent", "failed"]


async def test_an_api_send_is_one_row_from_accepted_to_sent(store: RecordStore) -> None:
    accepted = Outbound(
        "api:abc", NUMBER, USER, "api", "text", "hi", 1_000, send_id="abc", request_hash="h"
    )
    assert await store.add_outbound(accepted)
    (message,) = await store.messages(NUMBER, USER, 10, None)
    assert (message.public_id, message.current()[0]) == ("abc", "accepted")
    sent = Outbound("api:abc", NUMBER, USER, "api", "text", "hi", 1_500, "wamid.OUT3")
    assert await store.add_outbound(sent)
    (message,) = await store.messages(NUMBER, USER, 10, None)
    assert (message.public_id, message.send_id, message.at_us) == ("wamid.OUT3", "abc", 1_000)
    (conversation,) = await store.conversations(None, 10, None)
    assert conversation.message_count == 1


async def test_the_outcome_recorded_before_the_request_still_gets_its_id(
    store: RecordStore,
) -> None:
    assert await store.add_outbound(
        Outbound("api:def", NUMBER, USER, "api", "text", "hi", 1_500, "wamid.OUT4")
    )
    late = Outbound(
        "api:def", NUMBER, USER, "api", "text", "hi", 1_000, send_id="def", request_hash="h"
    )
    assert await store.add_outbound(late)
    (message,) = await store.messages(NUMBER, USER, 10, None)
    assert (message.public_id, message.send_id) == ("wamid.OUT4", "def")


async def claim(
    store: RecordStore, holder: str, *, now_us: int = 1_000, request_hash: str = "h"
) -> KeyState | None:
    return await store.claim_key(
        "api:k",
        send_id="k",
        request_hash=request_hash,
        holder=holder,
        now_us=now_us,
        lease_until_us=now_us + 15_000_000,
    )


async def test_of_requests_racing_for_a_key_exactly_one_takes_it(store: RecordStore) -> None:
    holders = [f"h{n}" for n in range(8)]
    states = await asyncio.gather(
        *(claim(store, holder, request_hash=f"hash{n % 2}") for n, holder in enumerate(holders))
    )
    owners = {state.holder for state in states if state is not None}
    assert len(owners) == 1
    (owner,) = owners
    assert [state is not None and state.holder == owner for state in states].count(True) == 8
    (winner,) = [state for holder, state in zip(holders, states, strict=True) if holder == owner]
    assert winner is not None
    assert (winner.attempts, winner.published) == (1, False)


async def test_a_key_is_taken_over_only_past_its_lease_by_the_same_request(
    store: RecordStore,
) -> None:
    first = await claim(store, "first", now_us=1_000)
    assert first is not None
    assert first.holder == "first"
    # Within the lease: still the first's, whatever the request.
    state = await claim(store, "second", now_us=1_000 + 14_000_000)
    assert state is not None
    assert state.holder == "first"
    later = 1_000 + 15_000_000
    state = await claim(store, "other", now_us=later, request_hash="another")
    assert state is not None
    assert (state.holder, state.request_hash) == ("first", "h")
    state = await claim(store, "retry", now_us=later)
    assert state is not None
    assert (state.holder, state.attempts, state.lease_until_us) == (
        "retry", 2, later + 15_000_000
    )  # fmt: skip
    await store.finish_key("api:k", later + 1)
    # Published: never taken again, whatever the time.
    state = await claim(store, "much-later", now_us=later + 10**12)
    assert state is not None
    assert (state.holder, state.published) == ("retry", True)


async def test_a_released_key_is_taken_at_once_by_a_retry(store: RecordStore) -> None:
    assert (await claim(store, "first")) is not None
    await store.release_key("api:k", "someone-else")  # not theirs to give back
    state = await claim(store, "retry", now_us=2_000)
    assert state is not None
    assert state.holder == "first"
    await store.release_key("api:k", "first")
    state = await claim(store, "retry", now_us=2_000)
    assert state is not None
    assert state.holder == "retry"


async def test_sends_accepted_before_the_keys_table_keep_their_key(database_url: str) -> None:
    engine = create_engine(database_url, timeout_seconds=5)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(
                lambda sync: command.upgrade(migrate.alembic_config(sync), "0001")
            )
        # The row as the release at 0001 wrote it (today's store writes newer columns too).
        async with engine.begin() as connection:
            await connection.execute(
                messages.insert().values(
                    phone_number_id=NUMBER,
                    user=USER,
                    direction="out",
                    idempotency_key="api:old",
                    send_id="old",
                    request_hash="h",
                    kind="api",
                    type="text",
                    text="hi",
                    at_us=1_000,
                )
            )
        await migrate.upgrade(engine)
        state = await RecordStore(engine).claim_key(
            "api:old",
            send_id="old",
            request_hash="h",
            holder="repeat",
            now_us=10**15,
            lease_until_us=10**15 + 1,
        )
        assert state is not None
        assert (state.holder, state.published) == ("", True)
    finally:
        await engine.dispose()


async def test_a_parked_send_fails_until_a_replay_of_it_is_sent(store: RecordStore) -> None:
    error = {"code": 190, "title": "parked: permanent", "message": "token expired"}
    parked = Parked("reply:wamid.IN5", NUMBER, USER, "reply", 2_000, error, "text", "Hello!")
    assert await store.add_parked(parked)
    (message,) = await store.messages(NUMBER, USER, 10, None)
    assert (message.public_id, message.type, message.text, message.current()) == (
        None,
        "text",
        "Hello!",
        ("failed", error),
    )
    assert await store.add_outbound(reply(5, 9_000, "wamid.OUT5"))
    (message,) = await store.messages(NUMBER, USER, 10, None)
    assert (message.public_id, message.type, message.current()) == (
        "wamid.OUT5",
        "text",
        ("accepted", None),
    )
    # A park reported after the send it concerned (the events crossed) changes nothing.
    assert not await store.add_parked(parked)


async def test_pages_follow_their_cursor_without_repeats_or_gaps(store: RecordStore) -> None:
    for n in range(7):
        # Two messages share each time: the id breaks the tie.
        await store.add_inbound(inbound(n, 1_000 + n // 2))
    seen: list[str | None] = []
    after: MessageCursor | None = None
    while True:
        page = await store.messages(NUMBER, USER, 3, after)
        seen.extend(m.public_id for m in page)
        if len(page) < 3:
            break
        after = MessageCursor(page[-1].at_us, page[-1].id)
        # Recorded meanwhile, newer than the page read: it belongs to no later page.
        await store.add_inbound(inbound(100 + len(seen), 5_000))
    assert sorted(seen) == sorted(f"wamid.IN{n}" for n in range(7))
    assert len(seen) == len(set(seen)) == 7


async def test_conversations_come_latest_first_by_page(store: RecordStore) -> None:
    users = [f"1555000100{n}" for n in range(5)]
    for n, user in enumerate(users):
        await store.add_inbound(inbound(n, 1_000 * (n % 3), user=user))
    first = await store.conversations(NUMBER, 2, None)
    last = first[-1]
    rest = await store.conversations(
        NUMBER, 10, ConversationCursor(last.last_at_us, last.phone_number_id, last.user)
    )
    order = [c.user for c in first + rest]
    assert sorted(order) == sorted(users)
    times = [c.last_at_us for c in first + rest]
    assert times == sorted(times, reverse=True)
    assert await store.conversations("999", 10, None) == []


async def test_replicas_starting_at_once_upgrade_the_schema_once(
    postgres_database: PostgresDatabase,
) -> None:
    engines = [create_engine(postgres_database.url, timeout_seconds=10) for _ in range(3)]
    try:
        await asyncio.gather(*(migrate.upgrade(engine) for engine in engines))
        for engine in engines:
            assert await migrate.current_revision(engine) == migrate.head_revision()
    finally:
        for engine in engines:
            await engine.dispose()
