"""Handing a conversation to a person through the api: ``POST`` / ``DELETE``
``/v1/conversations/{phone_number_id}/{user}/handoff``, against the whole pipeline."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from hiker.core.keys import Keys
from hiker.core.ownership import OwnershipStore
from hiker.tools.simulate import DEFAULT_PHONE_NUMBER_ID as PHONE_NUMBER_ID
from tests.integration.api.conftest import API_TOKEN, PostgresDatabase, start_api
from tests.integration.conftest import PipelineFactory
from tests.integration.test_handoff import SKIPPED_HUMAN, wait_until_handled

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


async def test_handoff_by_api_silences_that_user_only_and_the_persons_send_goes_out(
    make_pipeline: PipelineFactory,
    postgres_database: PostgresDatabase,
    redis_url: str,
    redis_prefix: str,
) -> None:
    pipeline = await make_pipeline(HIKER_IDLE_TIMEOUT_SECONDS="60")
    api = await start_api(pipeline, postgres_database.url)
    keys = Keys(redis_prefix)
    alice, bob = "15550001001", "15550001002"
    path = f"/v1/conversations/{PHONE_NUMBER_ID}/{alice}/handoff"

    async def call(method: str, url: str, body: Any = None) -> tuple[int, Any]:
        async with pipeline.session.request(
            method, api.url(url), json=body, headers=AUTH
        ) as response:
            return response.status, await response.json()

    before = time.time()
    status, owner = await call("POST", path, {"minutes": 60, "reason": "billing question"})
    assert status == 200, owner
    assert owner["owner"] == "human"
    until = time.mktime(time.strptime(owner["until"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert before + 3590 < until < time.time() + 3610

    held = await pipeline.say(alice, "hello")
    await pipeline.say(bob, "hello")
    await wait_until_handled(redis_url, keys, alice, held)
    assert await pipeline.wait_for_texts(bob, 1) == ["hello to you too"]
    assert await pipeline.texts(alice) == []
    assert SKIPPED_HUMAN + " 1.0" in await pipeline.metrics("conversation")

    # The person answers through the api while they own the conversation.
    async with pipeline.session.post(
        api.url("/v1/messages"),
        json={"phone_number_id": PHONE_NUMBER_ID, "to": alice, "text": "Hi, Sam here"},
        headers={**AUTH, "Idempotency-Key": "person-1"},
    ) as response:
        assert response.status == 202
    assert await pipeline.wait_for_texts(alice, 1) == ["Hi, Sam here"]

    # The user's message is in the history the agent tool reads.
    status, page = await call("GET", f"/v1/conversations/{PHONE_NUMBER_ID}/{alice}/messages")
    assert status == 200
    assert held in [m["id"] for m in page["data"]]

    status, owner = await call("DELETE", path)
    assert (status, owner) == (200, {"owner": "bot"})
    await pipeline.say(alice, "hello")
    assert await pipeline.wait_for_texts(alice, 2) == ["Hi, Sam here", "hello to you too"]
    async with pipeline.session.get(api.ops_url("/metrics")) as response:
        assert 'hiker_handoffs_total{reason="api"} 1.0' in await response.text()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"minutes": 0}', "minutes"),
        (b'{"minutes": "60"}', "minutes"),
        (b'{"minutes": true}', "minutes"),
        (b'{"minutes": 1441}', "minutes"),
        (b'{"reason": "no minutes"}', "minutes"),
        (b'{"minutes": 5, "reason": ""}', "reason"),
        (b'{"minutes": 5, "reason": "' + b"x" * 201 + b'"}', "reason"),
        (b'{"minutes": 5, "until": "tomorrow"}', "until"),
        (b"[60]", "body"),
        (b"{not json", "body"),
    ],
)
async def test_a_bad_handoff_is_refused_naming_the_field_and_hands_nothing_over(
    make_pipeline: PipelineFactory,
    tmp_path: Path,
    redis_url: str,
    redis_prefix: str,
    body: bytes,
    field: str,
) -> None:
    pipeline = await make_pipeline(services=("graph",))
    api = await start_api(pipeline, f"sqlite+aiosqlite:///{tmp_path / 'history.db'}")
    user = "15550001010"
    async with pipeline.session.post(
        api.url(f"/v1/conversations/{PHONE_NUMBER_ID}/{user}/handoff"),
        data=body,
        headers={**AUTH, "Content-Type": "application/json"},
    ) as response:
        assert response.status in (400, 422)
        problem = await response.json()
    assert [f["field"] for f in problem["error"]["error_data"]["fields"]] == [field]
    client = Redis.from_url(redis_url)
    try:
        owner = await OwnershipStore(client, Keys(redis_prefix)).read(PHONE_NUMBER_ID, user)
    finally:
        await client.aclose()
    assert owner.until is None
