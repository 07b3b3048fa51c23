"""The truth of each send across the whole path (real RabbitMQ, Redis, and SQLite or PostgreSQL):
the Graph mock reports statuses as Meta does (signed webhooks to ingress, with pricing and the
send's callback data), and the api's history, metrics and template list follow them."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import pytest

from hiker.core.settings import GraphMockSettings, load_settings
from hiker.graphmock.app import create_app as create_graph_mock
from hiker.tools.simulate import messages_change, template_change, template_webhook, webhook_body
from tests.integration.api.conftest import RunningApi, start_api
from tests.integration.api.test_api_http import AUTH, call, contract_of, eventually, history
from tests.integration.conftest import (
    APP_SECRET,
    PHONE_NUMBER_ID,
    Pipeline,
    PipelineFactory,
    metric_value,
    start_service,
)

pytestmark = pytest.mark.integration


async def reporting_stack(
    make_pipeline: PipelineFactory, database_url: str, **api_env: str
) -> tuple[Pipeline, RunningApi]:
    """ingress, a Graph mock that posts its statuses to it, the sender and the api."""
    pipeline = await make_pipeline(services=("ingress",))
    env = {**pipeline.env, "HIKER_GRAPH_MOCK_WEBHOOK_URL": pipeline.webhook_url}
    graph = await pipeline.start("graph", create_graph_mock(load_settings(GraphMockSettings, env)))
    pipeline.env["HIKER_GRAPH_BASE_URL"] = str(graph.make_url(""))
    await start_service(pipeline, "sender")
    return pipeline, await start_api(pipeline, database_url, **api_env)


def template_send(user: str, name: str) -> dict[str, Any]:
    return {
        "phone_number_id": PHONE_NUMBER_ID,
        "to": user,
        "template": {"name": name, "language": "en_US"},
    }


async def send(pipeline: Pipeline, api: RunningApi, request: dict[str, Any], key: str) -> str:
    headers = {**AUTH, "Idempotency-Key": key}
    status, body = await call(pipeline, api, "POST", "/v1/messages", json=request, headers=headers)
    assert status == 202, body
    return str(body["id"])


async def last_item(pipeline: Pipeline, api: RunningApi, user: str, status: str) -> Any:
    async def reached() -> Any:
        items = (await history(pipeline, api, user))["data"]
        return items[0] if items and items[0]["status"] == status else None

    return await eventually(reached, what=f"{user}'s send {status}")


async def test_a_send_meta_fails_after_accepting_it_is_failed_everywhere_and_its_price_counted(
    make_pipeline: PipelineFactory, database_url: str
) -> None:
    pipeline, api = await reporting_stack(make_pipeline, database_url)
    contract = await contract_of(pipeline, api)
    # The mock's reserved range: accepted, priced when sent, then failed with 131026.
    doomed, fine, limited = "15550990001", "15550002101", "15550002102"
    await pipeline.script_faults(limited, {"status": 200, "failed_status": 131049})
    doomed_id = await send(pipeline, api, template_send(doomed, "spring_promo"), "promo-1")
    await send(pipeline, api, template_send(fine, "order_update"), "order-1")
    await send(pipeline, api, template_send(limited, "spring_promo"), "promo-2")

    (accepted,) = await eventually(lambda: pipeline.sent(doomed), what="the send at Graph")
    # Meta echoes this on every status: what joins them to the send.
    assert accepted["payload"]["biz_opaque_callback_data"] == f"api:{doomed_id}"
    failed = await last_item(pipeline, api, doomed, "failed")
    contract.check("MessageItem", failed)
    assert (failed["id"], failed["send_id"]) == (accepted["id"], doomed_id)
    assert failed["error"]["code"] == 131026
    assert [(s["status"], (s["error"] or {}).get("code")) for s in failed["statuses"]] == [
        ("sent", None),
        ("failed", 131026),
    ]
    assert failed["pricing"] == {
        "pricing_model": "PMP",
        "type": "regular",
        "category": "marketing",
        "billable": True,
        "charged": True,
    }
    delivered = await last_item(pipeline, api, fine, "delivered")
    assert (delivered["pricing"]["category"], delivered["error"]) == ("utility", None)
    assert (await last_item(pipeline, api, limited, "failed"))["error"]["code"] == 131049

    async def counted() -> Any:
        page = await pipeline.metrics("api-ops")
        billed = metric_value(page, "hiker_messages_billed_total", type="regular")
        return page if billed == 3 else None

    page = await eventually(counted, what="three priced messages counted")
    # Priced on sent and again on delivered: each message once.
    assert metric_value(page, "hiker_messages_billed_total", category="marketing") == 2
    assert metric_value(page, "hiker_messages_billed_total", category="utility") == 1
    assert metric_value(page, "hiker_messages_failed_total", code="131026") == 1
    assert metric_value(page, "hiker_messages_failed_total", code="131049") == 1


async def test_a_status_before_graphs_answer_is_recorded_joins_the_send_by_its_key(
    make_pipeline: PipelineFactory, database_url: str
) -> None:
    # No sender: the send is accepted by the api and Graph's answer never recorded.
    pipeline = await make_pipeline(services=("ingress",))
    api = await start_api(pipeline, database_url)
    user = "15550002103"
    send_id = await send(
        pipeline, api, {"phone_number_id": PHONE_NUMBER_ID, "to": user, "text": "hi"}, "k-1"
    )
    await last_item(pipeline, api, user, "accepted")
    status = {
        "id": "wamid.FROM-META-ONLY",
        "status": "delivered",
        "timestamp": "1767225600",
        "recipient_id": user,
        "biz_opaque_callback_data": f"api:{send_id}",
        "pricing": {"pricing_model": "PMP", "type": "free_customer_service", "category": "service"},
    }
    assert await pipeline.post(webhook_body(messages_change(statuses=[status]))) == 200
    item = await last_item(pipeline, api, user, "delivered")
    assert (item["id"], item["send_id"], item["text"]) == ("wamid.FROM-META-ONLY", send_id, "hi")
    assert (item["pricing"]["type"], item["pricing"]["charged"]) == ("free_customer_service", False)


async def test_a_paused_template_is_shown_and_its_sends_parked_with_that_reason(
    make_pipeline: PipelineFactory, database_url: str
) -> None:
    pipeline, api = await reporting_stack(make_pipeline, database_url)
    contract = await contract_of(pipeline, api)
    paused = template_change("order_update", event="PAUSED", reason="NONE")
    assert await pipeline.post(template_webhook(paused)) == 200
    # What an operator types to see it locally: `hiker simulate --template`.
    simulated = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hiker",
        "simulate",
        "--url",
        pipeline.webhook_url,
        "--template",
        "order_update",
        "--template-quality",
        "RED",
        env={**os.environ, "HIKER_APP_SECRET": APP_SECRET},
        stdout=asyncio.subprocess.PIPE,
    )
    printed, _ = await simulated.communicate()
    assert simulated.returncode == 0, printed
    assert b"message_template_quality_update of order_update" in printed

    async def listed() -> Any:
        status, body = await call(
            pipeline, api, "GET", "/v1/templates", params={"status": "paused"}
        )
        assert status == 200, body
        return body if body["data"] and body["data"][0]["quality"] == "RED" else None

    body = await eventually(listed, what="the paused template listed")
    contract.check("TemplatePage", body)
    (template,) = body["data"]
    assert (template["name"], template["language"], template["status"]) == (
        "order_update",
        "en_US",
        "PAUSED",
    )

    async def shown() -> bool:
        page = await pipeline.metrics("api-ops")
        return metric_value(page, "hiker_template_status", status="PAUSED", language="en_US") == 1

    # The metric follows the record (read back from the database once it is written).
    await eventually(shown, what="the paused template in hiker_template_status")

    # Graph refuses the paused template's send: parked at once with that reason, never retried.
    user = "15550002104"
    await pipeline.script_faults(
        user, {"status": 400, "code": 132015, "message": "Template is paused"}
    )
    await send(pipeline, api, template_send(user, "order_update"), "paused-1")
    item = await last_item(pipeline, api, user, "failed")
    assert (item["error"]["code"], item["error"]["title"]) == (132015, "parked: template_paused")
    assert await pipeline.sent(user) == []
    sender = await pipeline.metrics("sender")
    assert metric_value(sender, "hiker_messages_parked_total", code="132015") == 1
    assert metric_value(sender, "hiker_send_retries_total", code="132015") == 0


async def test_a_broadcast_counts_what_meta_reports_later_by_its_callback_data(
    make_pipeline: PipelineFactory, database_url: str
) -> None:
    # The whole way a status takes to a broadcast's counts: the sender puts the recipient's
    # send id in biz_opaque_callback_data, the mock reports statuses as Meta does, ingress
    # publishes them, the api joins them to the recipient by it.
    pipeline, api = await reporting_stack(
        make_pipeline,
        database_url,
        HIKER_MESSAGING_LIMIT="1000",
        HIKER_BROADCAST_TICK_SECONDS="0.2",
    )
    doomed, fine = "15550990003", "15550002201"
    body = {
        "phone_number_id": PHONE_NUMBER_ID,
        "name": "spring",
        "template": {"name": "order_update", "language": "en_US"},
        "recipients": [{"to": doomed}, {"to": fine}],
    }
    headers = {**AUTH, "Idempotency-Key": "spring-1"}
    status, created = await call(
        pipeline, api, "POST", "/v1/broadcasts", json=body, headers=headers
    )
    assert status == 202, created

    async def settled() -> Any:
        status, got = await call(pipeline, api, "GET", f"/v1/broadcasts/{created['id']}")
        assert status == 200, got
        counts = got["counts"]
        return got if counts["failed"] == 1 and counts["delivered"] == 1 else None

    reported = await eventually(settled, what="one recipient failed and one delivered")
    assert reported["failed_by_code"] == {"131026": 1}
    (sent,) = await pipeline.sent(doomed)
    assert sent["payload"]["biz_opaque_callback_data"].startswith(f"broadcast:{created['id']}:")
