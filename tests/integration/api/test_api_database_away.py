"""The database away for a while, users writing meanwhile: replies go on (the api is off the
reply path), the api holds what it could not record and reports not ready, nothing is
poisoned, and once the database is back every message, status, price and template change is
recorded exactly once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hiker.core.topology import API_RECORDS_QUEUE, POISON_QUEUE
from hiker.tools.simulate import (
    messages_change,
    template_change,
    template_webhook,
    webhook_body,
)
from tests.integration.api.conftest import PostgresDatabase, start_api
from tests.integration.api.test_api_http import eventually, history
from tests.integration.conftest import PipelineFactory, metric_value, queue_depth

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USERS = [f"1555000300{n}" for n in range(6)]


async def test_replies_go_on_and_recording_catches_up_exactly_once(
    make_pipeline: PipelineFactory, postgres_database: PostgresDatabase, amqp_url: str
) -> None:
    # No follow-up in the middle of what is counted.
    pipeline = await make_pipeline(HIKER_IDLE_TIMEOUT_SECONDS="600")
    api = await start_api(pipeline, postgres_database.url, HIKER_DATABASE_TIMEOUT_SECONDS="2")
    for user in USERS:
        await pipeline.say(user, "hello")
    for user in USERS:
        await pipeline.wait_for_texts(user, 1)

    await postgres_database.block()
    # Users go on writing while the database is away: the replies must not wait for it.
    for user in USERS:
        await pipeline.say(user, "echo still here")
    for user in USERS:
        assert await pipeline.wait_for_texts(user, 2, within=20) == [
            "hello to you too", "still here"
        ]  # fmt: skip
    replies = {user: [m["id"] for m in await pipeline.sent(user)] for user in USERS}
    free = {"pricing_model": "PMP", "type": "free_customer_service", "category": "service"}
    statuses = [
        {
            "id": wamid,
            "status": "delivered",
            "timestamp": "1700000000",
            "recipient_id": user,
            "pricing": free,
        }
        for user, ids in replies.items()
        for wamid in ids
    ]
    assert await pipeline.post(webhook_body(messages_change(statuses=statuses))) == 200
    paused = template_webhook(template_change("order_update", event="PAUSED"))
    assert await pipeline.post(paused) == 200

    async def not_ready() -> Any:
        async with pipeline.session.get(api.ops_url("/readyz")) as response:
            body = await response.json()
            checks = body["checks"]
            return response.status == 503 and not checks["dependencies"] and not checks["database"]

    await eventually(not_ready, within=20, what="the api to report the database away")
    metrics = await pipeline.metrics("api-ops")
    assert metric_value(metrics, "hiker_dependency_up", dependency="database") == 0
    await asyncio.sleep(2)  # away a while longer: held messages back off and wait

    await postgres_database.unblock()

    async def recorded(user: str) -> Any:
        body = await history(pipeline, api, user, limit="100")
        delivered = [m for m in body["data"] if m["status"] == "delivered"]
        return body if len(body["data"]) == 4 and len(delivered) == 2 else None

    for user in USERS:
        body = await eventually(lambda u=user: recorded(u), within=60, what=f"{user} recorded")
        items = body["data"]
        assert [(m["direction"], m["text"]) for m in items] == [
            ("out", "still here"), ("in", "echo still here"),
            ("out", "hello to you too"), ("in", "hello"),
        ]  # fmt: skip
        assert {m["id"] for m in items if m["direction"] == "out"} == set(replies[user])

    async def ready() -> bool:
        async with pipeline.session.get(api.ops_url("/readyz")) as response:
            return response.status == 200

    await eventually(ready, within=20, what="the api ready again")
    assert await queue_depth(amqp_url, POISON_QUEUE) == 0
    assert await queue_depth(amqp_url, API_RECORDS_QUEUE) == 0
    metrics = await pipeline.metrics("api-ops")
    expected = len(USERS) * 2
    for kind, count in (("message_in", expected), ("message_out", expected), ("status", expected)):
        assert metric_value(metrics, "hiker_api_records_written_total", kind=kind) == count
    assert metric_value(metrics, "hiker_api_records_written_total", kind="template") == 1
    billed = metric_value(metrics, "hiker_messages_billed_total", type="free_customer_service")
    assert billed == expected
