"""The Graph client against the Graph mock: which URL and token a send uses, and which it never
calls, whatever phone number id a command carries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from hiker.core.actions import Template, Text
from hiker.core.settings import AccessTokens, GraphMockSettings, load_settings
from hiker.graphmock.app import create_app
from hiker.sender.graph import GraphClient
from hiker.sender.retry import BAD_PHONE_NUMBER_ID, Verdict, verdict_of

OWN_NUMBER = "100000000000001"
OTHER_NUMBER = "100000000000002"
TOKENS = {"HIKER_ACCESS_TOKENS": f"{OWN_NUMBER}=own-token", "HIKER_ACCESS_TOKEN": "default-token"}


@pytest.fixture
async def graph() -> AsyncIterator[tuple[GraphClient, TestServer, aiohttp.ClientSession]]:
    async with (
        TestServer(create_app(load_settings(GraphMockSettings, TOKENS))) as server,
        aiohttp.ClientSession() as session,
    ):
        client = GraphClient(
            session,
            base_url=str(server.make_url("/")),
            api_version="v23.0",
            tokens=AccessTokens({OWN_NUMBER: SecretStr("own-token")}, SecretStr("default-token")),
        )
        yield client, server, session


async def requests_seen(server: TestServer, session: aiohttp.ClientSession) -> list[Any]:
    async with session.get(server.make_url("/_mock/requests")) as response:
        return [(r["method"], r["path"]) for r in await response.json()]


@pytest.mark.parametrize(
    "phone_number_id",
    [
        "106540352242922/deregister?",
        f"../{OWN_NUMBER}",
        f"{OTHER_NUMBER}/../{OWN_NUMBER}",
        f"{OWN_NUMBER}?fields=x",
        "%2e%2e",
        "\u0661\u0660\u0660",  # Arabic-Indic digits: isdigit() says yes
        "",
    ],
)
async def test_a_phone_number_id_that_is_not_digits_is_refused_never_called(
    graph: tuple[GraphClient, TestServer, aiohttp.ClientSession], phone_number_id: str
) -> None:
    client, server, session = graph
    call = await client.send(phone_number_id, "15550001111", Text(body="hello"))
    assert call.outcome.failure == BAD_PHONE_NUMBER_ID
    assert verdict_of(call.outcome) is Verdict.PARK  # parked for an operator, not retried
    assert call.error is not None
    assert "not called" in call.error["message"]
    assert await requests_seen(server, session) == []


async def test_each_number_is_sent_to_its_own_path_with_its_own_token(
    graph: tuple[GraphClient, TestServer, aiohttp.ClientSession],
) -> None:
    client, server, session = graph
    for number in (OWN_NUMBER, OTHER_NUMBER):
        call = await client.send(number, "15550001111", Text(body="hello"))
        # The mock answers a number with a token of its own to that token only (else 190).
        assert call.outcome.http_status == 200, call.error
        assert verdict_of(call.outcome) is Verdict.SENT
    assert await requests_seen(server, session) == [
        ("POST", f"/v23.0/{OWN_NUMBER}/messages"),
        ("POST", f"/v23.0/{OTHER_NUMBER}/messages"),
    ]


async def test_headers_are_kept_per_token_not_per_number(
    graph: tuple[GraphClient, TestServer, aiohttp.ClientSession],
) -> None:
    client, _, _ = graph
    # The default token serves any number a message names: one entry per token, whatever comes.
    for n in range(200):
        assert (await client.send(f"1555{n:011d}", "15550001111", Text(body="hi"))).error is None
    await client.send(OWN_NUMBER, "15550001111", Text(body="hi"))
    assert len(client._headers) == 2  # the bound under test: tokens configured


async def test_a_marketing_send_goes_to_the_marketing_messages_endpoint(
    graph: tuple[GraphClient, TestServer, aiohttp.ClientSession],
) -> None:
    client, server, session = graph
    template = Template(name="december_promo", language="en_US")
    call = await client.send(OWN_NUMBER, "15550001111", template, marketing=True)
    assert verdict_of(call.outcome) is Verdict.SENT, call.error
    assert await requests_seen(server, session) == [
        ("POST", f"/v23.0/{OWN_NUMBER}/marketing_messages")
    ]
