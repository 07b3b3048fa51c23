"""Several api tokens at once, with scopes and numbers, against real PostgreSQL and RabbitMQ:
each route answers what a token's scopes allow (403 otherwise), a token limited to numbers
reads and sends for those only, and old and new tokens both work during a rotation."""

from __future__ import annotations

from typing import Any

import pytest

from hiker.api.db.engine import create_engine
from hiker.api.db.repository import RecordStore
from hiker.api.history import Inbound
from hiker.api.sending import send_id_of
from hiker.core import topology
from tests.integration.api.conftest import API_TOKEN, PostgresDatabase, RunningApi, start_api
from tests.integration.conftest import Pipeline, PipelineFactory, queued_contracts

pytestmark = pytest.mark.integration

MINE, OTHER = "100000000000001", "100000000000002"
READER = "reader-token-0123456789abcdef"
SENDER = "sender-token-0123456789abcdef"
OLD, NEW = "old-admin-0123456789abcdef", "new-admin-0123456789abcdef"
TOKENS = f"{READER}:read@{MINE}, {SENDER}:send@{MINE}\n{OLD}:admin\n{NEW}:admin"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def api(
    make_pipeline: PipelineFactory, postgres_database: PostgresDatabase
) -> tuple[Pipeline, RunningApi]:
    pipeline = await make_pipeline(services=())
    running = await start_api(pipeline, postgres_database.url, HIKER_API_TOKENS=TOKENS)
    engine = create_engine(postgres_database.url, timeout_seconds=5)
    try:
        store = RecordStore(engine)
        for n, number in enumerate((MINE, OTHER)):
            await store.add_inbound(Inbound(f"wamid.T{n}", number, "15550005001", "text", "hi", n))
    finally:
        await engine.dispose()
    return pipeline, running


async def call(
    pipeline: Pipeline, api: RunningApi, token: str, method: str, path: str, **kwargs: Any
) -> tuple[int, Any]:
    headers = {**bearer(token), **kwargs.pop("headers", {})}
    async with pipeline.session.request(method, api.url(path), headers=headers, **kwargs) as r:
        return r.status, await r.json(content_type=None)


def send(number: str, key: str) -> dict[str, Any]:
    return {
        "json": {"phone_number_id": number, "to": "15550005001", "text": "hi"},
        "headers": {"Idempotency-Key": key},
    }


async def test_each_token_does_what_its_scopes_and_numbers_allow(
    api: tuple[Pipeline, RunningApi],
) -> None:
    pipeline, running = api
    messages = "/v1/conversations/{}/15550005001/messages"

    # The reader reads its number's history: the list filtered to it, others refused.
    status, page = await call(pipeline, running, READER, "GET", "/v1/conversations")
    assert status == 200
    assert [c["phone_number_id"] for c in page["data"]] == [MINE]
    assert (await call(pipeline, running, READER, "GET", messages.format(MINE)))[0] == 200
    for path in (messages.format(OTHER), f"/v1/conversations?phone_number_id={OTHER}"):
        status, problem = await call(pipeline, running, READER, "GET", path)
        assert (status, problem["error"]["code"]) == (403, 10), path
        assert "phone number id" in problem["error"]["message"]
    status, problem = await call(
        pipeline, running, READER, "POST", "/v1/messages", **send(MINE, "r")
    )
    assert status == 403
    assert "send scope" in problem["error"]["message"]
    assert (await call(pipeline, running, READER, "GET", "/v1/openapi.json"))[0] == 200

    # The sender sends for its number only, and reads nothing.
    assert (await call(pipeline, running, SENDER, "GET", "/v1/conversations"))[0] == 403
    status, _ = await call(pipeline, running, SENDER, "POST", "/v1/messages", **send(OTHER, "s1"))
    assert status == 403
    status, body = await call(pipeline, running, SENDER, "POST", "/v1/messages", **send(MINE, "s2"))
    assert (status, body["id"]) == (202, send_id_of("s2"))
    # The refused send took no key: the same key, from a token that may, is a first send.
    status, body = await call(pipeline, running, OLD, "POST", "/v1/messages", **send(OTHER, "s1"))
    assert (status, body["id"]) == (202, send_id_of("s1"))
    queued = await queued_contracts(pipeline.env["HIKER_AMQP_URL"], topology.SENDER_OUTBOX_QUEUE)
    assert sorted(c["phone_number_id"] for c in queued) == [MINE, OTHER]


async def test_during_a_rotation_old_and_new_tokens_both_work(
    api: tuple[Pipeline, RunningApi],
) -> None:
    pipeline, running = api
    for token in (OLD, NEW, API_TOKEN):  # HIKER_API_TOKEN is still one admin token
        status, page = await call(pipeline, running, token, "GET", "/v1/conversations")
        assert status == 200, token
        assert {c["phone_number_id"] for c in page["data"]} == {MINE, OTHER}
    for token in ("", "x", OLD[:-1], OLD + "x", READER.upper()):
        assert (await call(pipeline, running, token, "GET", "/v1/conversations"))[0] == 401


async def test_templates_are_read_by_a_token_of_the_read_scope_not_limited_to_numbers(
    api: tuple[Pipeline, RunningApi],
) -> None:
    pipeline, running = api
    # Templates belong to a business account, which a token limited to numbers does not name.
    status, problem = await call(pipeline, running, READER, "GET", "/v1/templates")
    assert status == 403
    assert "limited to numbers" in problem["error"]["message"]
    status, problem = await call(pipeline, running, SENDER, "GET", "/v1/templates")
    assert status == 403  # no read scope
    status, page = await call(pipeline, running, NEW, "GET", "/v1/templates")
    assert (status, page) == (200, {"data": [], "next_cursor": None})
    status, problem = await call(
        pipeline, running, NEW, "GET", "/v1/templates", params={"status": "PAUSED; DROP"}
    )
    assert status == 400
    assert problem["error"]["error_data"]["fields"][0]["field"] == "status"
