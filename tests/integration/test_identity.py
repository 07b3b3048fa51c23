"""Users known by a business-scoped user id (BSUID): replies Graph can route, end to end.

Meta may leave a user's phone number out of webhooks since 2026 (usernames): such a user must get
every kind of reply, addressed by ``recipient`` (Graph refuses a BSUID in ``to``), and a user
whose phone number comes and goes must keep one conversation.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from hiker.core import topology
from hiker.tools.simulate import image_message, messages_change, text_message, webhook_body
from tests.integration.conftest import Pipeline, PipelineFactory, metric_value
from tests.integration.test_rich_replies import RULES, meta_schema

pytestmark = pytest.mark.integration


def from_user(message: dict[str, Any], bsuid: str, *, phone: str | None = None) -> dict[str, Any]:
    """A webhook body of ``message`` sent by ``bsuid``, with its phone number only when given,
    as Meta sends it to a business (``from_user_id``, ``contacts[].user_id``)."""
    message = {k: v for k, v in message.items() if k != "from"}
    message["from_user_id"] = bsuid
    contact: dict[str, Any] = {"profile": {"name": "Ana", "username": "@ana"}, "user_id": bsuid}
    if phone is not None:
        message["from"] = phone
        contact["wa_id"] = phone
    change = messages_change([message])
    change["value"]["contacts"] = [contact]
    return webhook_body(change)


async def say_as(pipeline: Pipeline, bsuid: str, text: str, *, phone: str | None = None) -> str:
    message = text_message("0", text)
    assert await pipeline.post(from_user(message, bsuid, phone=phone)) == 200
    return str(message["id"])


def as_meta_schema_reads_it(payload: dict[str, Any]) -> dict[str, Any]:
    # The schema predates ``recipient`` (shared/meta/README.md): a BSUID's body read with it as
    # ``to``. It has no ``biz_opaque_callback_data`` either (a string of the send request in
    # Meta's messages reference), which every send carries. The rest must be as it describes.
    return {
        ("to" if k == "recipient" else k): v
        for k, v in payload.items()
        if k != "biz_opaque_callback_data"
    }


async def test_a_user_known_only_by_bsuid_gets_every_kind_of_reply_by_recipient(
    make_pipeline: PipelineFactory, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    pipeline = await make_pipeline(
        HIKER_RULES_FILE=str(rules), HIKER_IDLE_TIMEOUT_SECONDS="2", HIKER_READ_RECEIPTS="read"
    )
    bsuid = "US.13491208655302741918"
    wamids = [await say_as(pipeline, bsuid, word) for word in ("menu", "photo", "docs")]
    wamids.append(await say_as(pipeline, bsuid, "catalog"))
    pics = image_message("0")
    assert await pipeline.post(from_user(pics, bsuid)) == 200
    # menu, photo, two of docs, the list, the reaction, then the idle follow-up.
    await pipeline.wait_for_texts(bsuid, 7, within=30)
    sent = await pipeline.sent(bsuid)
    assert {m["type"] for m in sent} >= {"interactive", "image", "document", "text", "reaction"}
    for message in sent:
        assert "to" not in message["payload"], message["payload"]
        assert message["payload"]["recipient"] == bsuid
        assert (message["to"], message["recipient"]) == (None, bsuid)
    schema = meta_schema()
    if schema is not None:
        for message in sent:
            payload = as_meta_schema_reads_it(message["payload"])
            assert list(schema.iter_errors(payload)) == [], json.dumps(message["payload"])
    async with pipeline.session.get(pipeline.url("graph", "/_mock/receipts")) as response:
        receipts = {r["message_id"] for r in await response.json()}
    assert set(wamids) <= receipts


async def test_a_reply_goes_to_the_phone_number_when_the_message_carried_one(
    make_pipeline: PipelineFactory, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    pipeline = await make_pipeline(HIKER_RULES_FILE=str(rules), HIKER_IDLE_TIMEOUT_SECONDS="120")
    bsuid, phone = "BR.1502576394655843", "5511955550001"
    await say_as(pipeline, bsuid, "docs", phone=phone)
    await pipeline.wait_for_texts(phone, 2)
    for message in await pipeline.sent(phone):
        assert message["payload"]["to"] == phone
        assert "recipient" not in message["payload"]


async def test_the_graph_mock_refuses_a_bsuid_in_to_as_graph_does(
    make_pipeline: PipelineFactory,
) -> None:
    pipeline = await make_pipeline(services=("graph",))
    url = pipeline.url("graph", "/v23.0/1234567890/messages")
    headers = {"Authorization": f"Bearer {pipeline.env['HIKER_ACCESS_TOKEN']}"}
    base = {"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}}
    for body in (
        {**base, "to": "US.13491208655302741918"},
        {**base, "to": "15550001111", "recipient": "US.13491208655302741918"},
        base,
    ):
        async with pipeline.session.post(url, json=body, headers=headers) as response:
            assert response.status == 400, body
            assert (await response.json())["error"]["code"] == 100
    assert await pipeline.sent() == []


async def test_an_error_131062_parks_the_send_for_good(
    make_pipeline: PipelineFactory, amqp_url: str
) -> None:
    pipeline = await make_pipeline(HIKER_IDLE_TIMEOUT_SECONDS="120")
    bsuid = "US.55501310620000000001"
    # What Graph answers to an authentication template sent to a BSUID: never retried.
    await pipeline.script_faults(bsuid, {"status": 400, "code": 131062})
    await say_as(pipeline, bsuid, "hello")
    parked = await parked_sends(amqp_url, within=15)
    assert [(p["to"], reason, code) for p, reason, code in parked] == [
        (bsuid, "permanent", "131062")
    ]
    sender = await pipeline.metrics("sender")
    assert metric_value(sender, "hiker_messages_parked_total", code="131062") == 1
    assert metric_value(sender, "hiker_send_retries_total", code="131062") == 0


async def parked_sends(amqp_url: str, within: float) -> list[tuple[dict[str, Any], str, str]]:
    """The sends parked so far (waiting ``within`` seconds for the first): each command with
    its park reason and Graph code."""
    connection = await aio_pika.connect(amqp_url)
    found: list[tuple[dict[str, Any], str, str]] = []
    deadline = time.monotonic() + within
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(topology.SENDER_PARKED_QUEUE, passive=True)
        while not found and time.monotonic() < deadline:
            while (message := await queue.get(fail=False, no_ack=True)) is not None:
                headers = message.headers
                found.append(
                    (
                        json.loads(message.body),
                        str(headers[topology.HEADER_PARKED_REASON]),
                        str(headers[topology.HEADER_GRAPH_CODE]),
                    )
                )
            await asyncio.sleep(0.05)
    finally:
        await connection.close()
    return found
