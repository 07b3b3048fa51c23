"""The portfolio's messaging limit read from Graph: the tier named, read once an hour, and
what happens when Graph does not say."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from hiker.api.messaging_limit import FIELD, REFRESH_SECONDS, GraphMessagingLimit
from hiker.core.settings import AccessTokens

NUMBER = "100000000000001"


class Graph:
    def __init__(self) -> None:
        self.answer: dict[str, Any] = {FIELD: "TIER_2K", "id": NUMBER}
        self.asked: list[tuple[str, str, str | None]] = []

    async def node(self, request: web.Request) -> web.Response:
        self.asked.append(
            (request.path, request.query.get("fields", ""), request.headers.get("Authorization"))
        )
        return web.json_response(self.answer)


@pytest.fixture
async def graph() -> AsyncIterator[tuple[Graph, str]]:
    fake = Graph()
    app = web.Application()
    app.router.add_get("/{version}/{node}", fake.node)
    async with TestServer(app) as server:
        yield fake, str(server.make_url("/"))


async def test_the_tier_is_read_once_an_hour(graph: tuple[Graph, str]) -> None:
    fake, url = graph
    now = [0.0]
    async with aiohttp.ClientSession() as session:
        limit = GraphMessagingLimit(
            lambda: session,
            base_url=url,
            api_version="v23.0",
            tokens=AccessTokens({}, SecretStr("graph-token")),
            clock=lambda: now[0],
        )
        assert await limit([NUMBER]) == 2000
        fake.answer = {FIELD: "TIER_UNLIMITED", "id": NUMBER}
        assert await limit([NUMBER]) == 2000  # cached
        fake.answer = {"id": NUMBER}  # Graph does not say: the last value read stays
        now[0] += REFRESH_SECONDS
        assert await limit([NUMBER]) == 2000
        fake.answer = {FIELD: "TIER_UNLIMITED", "id": NUMBER}
        now[0] += REFRESH_SECONDS
        assert await limit([NUMBER]) is None
    assert fake.asked[0] == (f"/v23.0/{NUMBER}", FIELD, "Bearer graph-token")
    assert len(fake.asked) == 3


async def test_without_a_token_or_numbers_there_is_no_limit(graph: tuple[Graph, str]) -> None:
    fake, url = graph
    async with aiohttp.ClientSession() as session:
        limit = GraphMessagingLimit(
            lambda: session, base_url=url, api_version="v23.0", tokens=AccessTokens({}, None)
        )
        assert await limit([NUMBER]) is None
        assert await limit([]) is None
    assert fake.asked == []
