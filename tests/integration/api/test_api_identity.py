"""``hiker api`` and users known by a business-scoped user id (BSUID): either id finds the
conversation, items show every id, and a send to a BSUID goes out as Graph's ``recipient``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from hiker.api.db import migrate
from hiker.api.db.engine import create_engine
from hiker.api.db.repository import RecordStore
from hiker.api.history import Inbound
from tests.integration.api.conftest import start_api
from tests.integration.api.test_api_http import AUTH, call, contract_of, eventually, history
from tests.integration.conftest import PHONE_NUMBER_ID, PipelineFactory
from tests.integration.test_identity import say_as

pytestmark = pytest.mark.integration

NUMBER = "100000000000001"
PHONE = "15550003001"
BSUID = "US.13491208655302741918"


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, timeout_seconds=5)
    await migrate.upgrade(engine)
    yield engine
    await engine.dispose()


async def test_a_users_history_under_the_phone_number_and_the_bsuid_is_one(
    engine: AsyncEngine,
) -> None:
    store = RecordStore(engine)
    # Before BSUIDs the user was keyed by phone number; since, by BSUID with the phone beside.
    await store.add_inbound(Inbound("wamid.OLD", NUMBER, PHONE, "text", "before", 1_000))
    ids = {"user_id": BSUID, "wa_id": PHONE, "username": "@ana"}
    await store.add_inbound(
        Inbound("wamid.NEW", NUMBER, BSUID, "text", "after", 2_000, name="Ana", **ids)
    )
    for either in (PHONE, BSUID):
        page = await store.messages(NUMBER, either, 10, None)
        assert [m.text for m in page] == ["after", "before"], either
    latest, _ = await store.conversations(NUMBER, 10, None)
    assert (latest.user, latest.user_id, latest.wa_id, latest.username, latest.name) == (
        BSUID,
        BSUID,
        PHONE,
        "@ana",
        "Ana",
    )
    # A later message without the phone number keeps the one known.
    await store.add_inbound(Inbound("wamid.LAST", NUMBER, BSUID, "text", "x", 3_000))
    latest, _ = await store.conversations(NUMBER, 10, None)
    assert (latest.wa_id, latest.username) == (PHONE, "@ana")


async def test_conversations_and_history_answer_to_either_id_of_the_user(
    make_pipeline: PipelineFactory, database_url: str
) -> None:
    pipeline = await make_pipeline(HIKER_IDLE_TIMEOUT_SECONDS="600")
    api = await start_api(pipeline, database_url)
    contract = await contract_of(pipeline, api)
    await say_as(pipeline, BSUID, "hello", phone=PHONE)

    async def both() -> Any:
        body = await history(pipeline, api, PHONE)
        return body if len(body["data"]) == 2 else None

    by_phone = await eventually(both, what="the message and its reply")
    by_bsuid = await history(pipeline, api, BSUID)
    assert by_bsuid == by_phone
    contract.check("MessagePage", by_bsuid)
    status, page = await call(pipeline, api, "GET", "/v1/conversations")
    assert status == 200, page
    contract.check("ConversationPage", page)
    (item,) = page["data"]
    assert (item["user"], item["user_id"], item["wa_id"], item["username"], item["name"]) == (
        BSUID,
        BSUID,
        PHONE,
        "@ana",
        "Ana",
    )


async def test_a_send_to_a_bsuid_goes_out_as_recipient(
    make_pipeline: PipelineFactory, database_url: str
) -> None:
    pipeline = await make_pipeline(services=("graph", "sender"))
    api = await start_api(pipeline, database_url)
    request = {"phone_number_id": PHONE_NUMBER_ID, "to": BSUID, "text": "your order shipped"}
    headers = {**AUTH, "Idempotency-Key": "order-7-shipped"}
    status, body = await call(pipeline, api, "POST", "/v1/messages", json=request, headers=headers)
    assert status == 202, body
    (sent,) = await eventually(lambda: pipeline.sent(BSUID), what="the send")
    assert sent["payload"]["recipient"] == BSUID
    assert "to" not in sent["payload"]


async def test_the_longest_bsuid_meta_allows_is_recorded(engine: AsyncEngine) -> None:
    store = RecordStore(engine)
    longest = "US.ENT." + "7" * 128  # a parent BSUID: country, ENT, up to 128 characters
    await store.add_inbound(Inbound("wamid.LONG", NUMBER, longest, "text", "hi", 1_000))
    (message,) = await store.messages(NUMBER, longest, 10, None)
    assert message.user == longest
