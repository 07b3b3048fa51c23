"""Handing a conversation to a person through the api: ``POST`` / ``DELETE``
``/v1/conversations/{phone_number_id}/{user}/handoff``, against the whole pipeline."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from hiker.core.keys import Keys
from hiker.core.ownership import OwnershipStore
from hiker.tools.simulate import DEFAULT_PHONE_NUMBER_ID as PHONE_NUMBER_ID
from hiker.tools.simulate import webhook_body
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

    # The conversation list tells the agent tool who answers each conversation.
    status, listed = await call("GET", f"/v1/conversations?phone_number_id={PHONE_NUMBER_ID}")
    assert status == 200
    by_user = {c["user"]: c for c in listed["data"]}
    assert by_user[alice]["owner"] == "human"
    assert by_user[alice]["owner_until"][:19] == owner["until"][:19]
    assert by_user[alice]["handoff_reason"] == "billing question"
    assert (by_user[bob]["owner"], by_user[bob]["owner_until"]) == ("bot", None)

    status, owner = await call("DELETE", path)
    assert (status, owner) == (200, {"owner": "bot"})
    status, listed = await call("GET", f"/v1/conversations?phone_number_id={PHONE_NUMBER_ID}")
    assert {c["user"]: c["owner"] for c in listed["data"]}[alice] == "bot"
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


def echo_change(user: str, text: str, wamid: str) -> dict[str, Any]:
    """Meta's ``smb_message_echoes`` change: the business wrote ``text`` to ``user`` from the
    WhatsApp Business app (the ``to`` as Meta's reference shows it, with a "+")."""
    return {
        "field": "smb_message_echoes",
        "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
            "message_echoes": [
                {
                    "from": "15550783881",
                    "to": f"+{user}",
                    "id": wamid,
                    "timestamp": str(int(time.time())),
                    "type": "text",
                    "text": {"body": text},
                }
            ],
        },
    }


async def test_an_answer_from_the_business_app_hands_over_is_recorded_and_expires(
    make_pipeline: PipelineFactory,
    postgres_database: PostgresDatabase,
    redis_url: str,
    redis_prefix: str,
) -> None:
    # A person owns it for 3 s after answering from the app (HIKER_HANDOFF_MINUTES).
    pipeline = await make_pipeline(HIKER_IDLE_TIMEOUT_SECONDS="60", HIKER_HANDOFF_MINUTES="0.05")
    api = await start_api(pipeline, postgres_database.url)
    keys = Keys(redis_prefix)
    user, other = "15550001012", "15550001013"
    echoed_at = time.time()
    assert await pipeline.post(webhook_body(echo_change(user, "On my way!", "wamid.ECHO1"))) == 200
    client = Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + 15
        while (await OwnershipStore(client, keys).read(PHONE_NUMBER_ID, user)).until is None:
            assert time.monotonic() < deadline, "the echo handed nothing over"
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()
    held = await pipeline.say(user, "hello")
    await pipeline.say(other, "hello")
    await wait_until_handled(redis_url, keys, user, held)
    assert await pipeline.wait_for_texts(other, 1) == ["hello to you too"]
    assert await pipeline.texts(user) == []

    # The echo is in the history, outbound, written by a person.
    deadline = time.monotonic() + 15
    while True:
        async with pipeline.session.get(
            api.url(f"/v1/conversations/{PHONE_NUMBER_ID}/{user}/messages"), headers=AUTH
        ) as response:
            items = (await response.json())["data"]
        echoes = [m for m in items if m["id"] == "wamid.ECHO1"]
        if echoes or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert [(m["direction"], m["kind"], m["text"]) for m in echoes] == [
        ("out", "person", "On my way!")
    ]

    await asyncio.sleep(max(0.0, echoed_at + 3.0 - time.time()) + 0.2)  # to the handoff's end
    await pipeline.say(user, "hello")
    assert await pipeline.wait_for_texts(user, 1) == ["hello to you too"]


async def test_only_a_token_that_may_send_for_the_number_hands_over(
    make_pipeline: PipelineFactory, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    pipeline = await make_pipeline(services=("graph",))
    reader, other_number = "reader-token-0123456789abcd", "sender-elsewhere-0123456789"
    api = await start_api(
        pipeline,
        f"sqlite+aiosqlite:///{tmp_path / 'history.db'}",
        HIKER_API_TOKENS=f"{reader}:read,{other_number}:send@999999",
    )
    user = "15550001014"
    path = f"/v1/conversations/{PHONE_NUMBER_ID}/{user}/handoff"
    for token in (reader, other_number):
        for method in ("POST", "DELETE"):
            async with pipeline.session.request(
                method,
                api.url(path),
                json={"minutes": 5},
                headers={"Authorization": f"Bearer {token}"},
            ) as response:
                assert response.status == 403, (token, method)
    client = Redis.from_url(redis_url)
    try:
        owner = await OwnershipStore(client, Keys(redis_prefix)).read(PHONE_NUMBER_ID, user)
    finally:
        await client.aclose()
    assert owner.until is None
