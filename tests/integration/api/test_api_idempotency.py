"""``POST /v1/messages`` once per Idempotency-Key under races and crashes, against real
PostgreSQL and RabbitMQ: what counts is the commands that reach the sender's outbox (no sender
runs here, so every command published stays there to be counted)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from hiker.api.db.engine import create_engine
from hiker.api.db.repository import RecordStore
from hiker.api.sending import SendAcceptor, parse_send, send_id_of
from hiker.core import topology
from hiker.core.contracts import SendMessage
from tests.integration.api.conftest import API_TOKEN, PostgresDatabase, RunningApi, start_api
from tests.integration.conftest import PHONE_NUMBER_ID, Pipeline, PipelineFactory, queued_contracts

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
USER = "15550004001"


@pytest.fixture
async def api(
    make_pipeline: PipelineFactory, postgres_database: PostgresDatabase
) -> tuple[Pipeline, RunningApi]:
    pipeline = await make_pipeline(services=())
    return pipeline, await start_api(pipeline, postgres_database.url)


@pytest.fixture
async def engine(postgres_database: PostgresDatabase) -> AsyncIterator[AsyncEngine]:
    """A second connection pool to the api's database: another replica's, or a crashed one's."""
    engine = create_engine(postgres_database.url, timeout_seconds=5)
    yield engine
    await engine.dispose()


async def send(
    pipeline: Pipeline, api: RunningApi, key: str, body: dict[str, Any]
) -> tuple[int, Any, str | None]:
    headers = {**AUTH, "Idempotency-Key": key}
    async with pipeline.session.post(api.url("/v1/messages"), json=body, headers=headers) as r:
        return r.status, await r.json(), r.headers.get("Retry-After")


async def commands(pipeline: Pipeline, key: str) -> list[dict[str, Any]]:
    """The commands for the api send under ``key`` waiting in the sender's outbox."""
    queued = await queued_contracts(pipeline.env["HIKER_AMQP_URL"], topology.SENDER_OUTBOX_QUEUE)
    return [c for c in queued if c.get("idempotency_key") == f"api:{send_id_of(key)}"]


def text(body: str) -> dict[str, Any]:
    return {"phone_number_id": PHONE_NUMBER_ID, "to": USER, "text": body}


async def test_racing_requests_with_one_key_and_other_bodies_publish_one(
    api: tuple[Pipeline, RunningApi],
) -> None:
    pipeline, running = api
    answers = await asyncio.gather(
        *(send(pipeline, running, "race-1", text(f"body {n}")) for n in range(6))
    )
    statuses = sorted(status for status, _, _ in answers)
    assert statuses.count(202) == 1, answers
    assert set(statuses) <= {202, 409, 422}, answers
    for status, problem, retry_after in answers:
        if status == 409:
            assert retry_after is not None
            assert int(retry_after) >= 1
            assert problem["error"]["error_data"]["fields"][0]["field"] == "Idempotency-Key"
    (command,) = await commands(pipeline, "race-1")
    (winner,) = [body for status, body, _ in answers if status == 202]
    assert winner["id"] == send_id_of("race-1")
    # Once it is published, each loser's body is a reuse of the key: 422, whatever the timing.
    loser = next(f"body {n}" for n in range(6) if command["actions"][0]["body"] != f"body {n}")
    assert (await send(pipeline, running, "race-1", text(loser)))[0] == 422


async def test_racing_repeats_of_one_request_publish_once_with_one_id(
    api: tuple[Pipeline, RunningApi],
) -> None:
    pipeline, running = api
    answers = await asyncio.gather(
        *(send(pipeline, running, "race-2", text("hi")) for _ in range(6))
    )
    assert {status for status, _, _ in answers} <= {202, 409}, answers
    assert {body["id"] for status, body, _ in answers if status == 202} == {send_id_of("race-2")}
    assert len(await commands(pipeline, "race-2")) == 1
    # Once the first is done, every repeat is a 202 with its id, and publishes nothing.
    status, body, _ = await send(pipeline, running, "race-2", text("hi"))
    assert (status, body["id"]) == (202, send_id_of("race-2"))
    assert len(await commands(pipeline, "race-2")) == 1


async def crash_after_recording(
    engine: AsyncEngine, key: str, body: dict[str, Any], at: float
) -> None:
    """A request that recorded ``key`` at time ``at`` and died before publishing."""
    recorded = asyncio.Event()

    async def stalls(_: SendMessage) -> None:
        recorded.set()
        await asyncio.Event().wait()

    crashed = SendAcceptor(RecordStore(engine), stalls, clock=lambda: at)
    request = asyncio.create_task(crashed.accept(parse_send(body), key))
    await asyncio.wait_for(recorded.wait(), 10)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request


async def test_a_key_left_by_a_crash_answers_409_then_is_taken_over_after_its_lease(
    api: tuple[Pipeline, RunningApi], engine: AsyncEngine
) -> None:
    pipeline, running = api
    await crash_after_recording(engine, "crash-1", text("hi"), time.time())
    status, problem, retry_after = await send(pipeline, running, "crash-1", text("hi"))
    assert status == 409, problem
    assert retry_after is not None
    assert 1 <= int(retry_after) <= 15
    assert await commands(pipeline, "crash-1") == []

    # The same, as if it had crashed 20 s ago: its lease (15 s) is over.
    await crash_after_recording(engine, "crash-2", text("hi"), time.time() - 20)
    status, problem, _ = await send(pipeline, running, "crash-2", text("other"))
    assert status == 422, problem  # another request still cannot have the key
    status, body, _ = await send(pipeline, running, "crash-2", text("hi"))
    assert (status, body["id"]) == (202, send_id_of("crash-2"))
    (command,) = await commands(pipeline, "crash-2")
    assert command["actions"][0]["body"] == "hi"
    assert (await send(pipeline, running, "crash-2", text("hi")))[0] == 202
    assert len(await commands(pipeline, "crash-2")) == 1
