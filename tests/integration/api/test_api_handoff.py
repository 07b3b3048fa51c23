"""Handing a conversation to a person through the api: ``POST`` / ``DELETE``
``/v1/conversations/{phone_number_id}/{user}/handoff``, against the whole pipeline."""

from __future__ import annotations

import time
from typing import Any

import pytest

from hiker.core.keys import Keys
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
