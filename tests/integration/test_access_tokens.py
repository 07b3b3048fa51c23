"""Several phone numbers, each with its own access token: each send carries its number's token,
a number without one is parked (never retried), and the doctor checks every token."""

from __future__ import annotations

import asyncio
import json

import pytest

from hiker.core import topology
from hiker.core.parked_headers import ParkedHeaders
from hiker.tools.doctor.checkup import DoctorOptions, diagnose
from hiker.tools.doctor.report import Status
from hiker.tools.simulate import messages_change, text_message, webhook_body
from tests.integration.conftest import PipelineFactory, graph_token, queue_depth
from tests.support import take_all

pytestmark = pytest.mark.integration

ONE, TWO, THREE = "100000000000011", "100000000000012", "100000000000013"
TOKEN_ONE, TOKEN_TWO, EXPIRED = map(graph_token, ("EAA-token-one", "EAA-token-two", "EAA-expired"))
TOKENS = f"{ONE}={TOKEN_ONE},{TWO}={TOKEN_TWO}"


async def test_each_number_sends_with_its_own_token_and_one_without_is_parked(
    make_pipeline: PipelineFactory, amqp_url: str
) -> None:
    # The mock answers each number only to its own token, as Graph does.
    pipeline = await make_pipeline(
        HIKER_IDLE_TIMEOUT_SECONDS="120", HIKER_ACCESS_TOKEN="", HIKER_ACCESS_TOKENS=TOKENS
    )
    for number, user in ((ONE, "15550320001"), (TWO, "15550320002"), (THREE, "15550320003")):
        body = webhook_body(messages_change([text_message(user, "hello")], phone_number_id=number))
        assert await pipeline.post(body) == 200
    assert await pipeline.wait_for_texts("15550320001", 1) == ["hello to you too"]
    assert await pipeline.wait_for_texts("15550320002", 1) == ["hello to you too"]
    for _ in range(200):
        if await queue_depth(amqp_url, topology.SENDER_PARKED_QUEUE):
            break
        await asyncio.sleep(0.05)
    assert await pipeline.texts("15550320003") == []
    [sent_one] = await pipeline.sent("15550320001")
    assert sent_one["phone_number_id"] == ONE
    [parked] = await take_all(amqp_url, topology.SENDER_PARKED_QUEUE)
    why = ParkedHeaders.from_headers(parked.headers or {})
    assert (why.reason, why.graph_status) == ("permanent", "no_token")


async def test_the_doctor_checks_every_token_and_names_the_one_refused(
    make_pipeline: PipelineFactory,
) -> None:
    pipeline = await make_pipeline(
        services=("graph",), HIKER_ACCESS_TOKEN="", HIKER_ACCESS_TOKENS=TOKENS
    )
    env = {**pipeline.env, "HIKER_ACCESS_TOKENS": f"{ONE}={TOKEN_ONE},{TWO}={EXPIRED}"}
    env.pop("HIKER_ACCESS_TOKEN")
    findings = await diagnose(env, DoctorOptions(pipeline.url("graph", "/"), None, timeout=3))
    rows = {f.check: f for f in findings if f.check.startswith("graph:")}
    assert rows[f"graph: access token of {ONE}"].status is Status.OK
    refused = rows[f"graph: access token of {TWO}"]
    assert refused.status is Status.FAIL
    assert "HIKER_ACCESS_TOKENS" in refused.fix
    assert EXPIRED not in json.dumps([f.__dict__ for f in findings], default=str)
