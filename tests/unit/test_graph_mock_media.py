"""The Graph mock's media endpoints answer as Graph does: uploads Graph would refuse are refused,
a download URL lives minutes and needs the number's token, an expired id is Graph's error 100."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from hiker.core.settings import GraphMockSettings, load_settings
from hiker.graphmock.app import SHELF, create_app
from hiker.graphmock.media import URL_TTL_SECONDS

NUMBER = "100000000000001"
AUTH = {"Authorization": "Bearer media-token"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def mock() -> AsyncIterator[tuple[TestServer, aiohttp.ClientSession, Clock]]:
    app = create_app(load_settings(GraphMockSettings, {"HIKER_ACCESS_TOKEN": "media-token"}))
    clock = Clock()
    app[SHELF].clock = clock
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        yield server, session, clock


def form(*, product: str | None = "whatsapp", data: bytes | None = b"img") -> aiohttp.FormData:
    body = aiohttp.FormData()
    if product is not None:
        body.add_field("messaging_product", product)
    body.add_field("type", "image/png")
    if data is not None:
        body.add_field("file", data, filename="a.png", content_type="image/png")
    return body


async def upload(server: TestServer, session: aiohttp.ClientSession) -> str:
    url = server.make_url(f"/v23.0/{NUMBER}/media")
    async with session.post(url, data=form(), headers=AUTH) as response:
        assert response.status == 200
        return str((await response.json())["id"])


@pytest.mark.parametrize("bad", [{"product": None}, {"product": "sms"}, {"data": None}])
async def test_an_upload_graph_would_refuse_gets_error_100(
    mock: tuple[TestServer, aiohttp.ClientSession, Clock], bad: dict[str, Any]
) -> None:
    server, session, _ = mock
    url = server.make_url(f"/v23.0/{NUMBER}/media")
    async with session.post(url, data=form(**bad), headers=AUTH) as response:
        assert response.status == 400
        assert (await response.json())["error"]["code"] == 100


async def test_a_download_url_needs_the_token_and_lives_minutes(
    mock: tuple[TestServer, aiohttp.ClientSession, Clock],
) -> None:
    server, session, clock = mock
    media_id = await upload(server, session)
    async with session.get(server.make_url(f"/v23.0/{media_id}"), headers=AUTH) as response:
        described = await response.json()
    assert (described["mime_type"], described["file_size"], described["id"]) == (
        "image/png",
        3,
        media_id,
    )
    async with session.get(described["url"]) as response:
        assert response.status == 401
    async with session.get(described["url"], headers=AUTH) as response:
        assert (response.status, await response.read()) == (200, b"img")
    clock.now += URL_TTL_SECONDS + 1
    async with session.get(described["url"], headers=AUTH) as response:
        assert response.status == 404


async def test_an_expired_media_id_is_graphs_error_100(
    mock: tuple[TestServer, aiohttp.ClientSession, Clock],
) -> None:
    server, session, _ = mock
    media_id = await upload(server, session)
    async with session.post(server.make_url(f"/_mock/media/{media_id}/expire")) as response:
        assert response.status == 200
    async with session.get(server.make_url(f"/v23.0/{media_id}"), headers=AUTH) as response:
        assert response.status == 400
        error = (await response.json())["error"]
    assert (error["code"], error["error_subcode"], error["type"]) == (
        100,
        33,
        "GraphMethodException",
    )
