"""``hiker tunnel-url`` reads the ngrok agent's API (served here by a stand-in)."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestServer

from hiker.tools.tunnel import public_url


async def test_prints_the_https_url_once_the_agent_has_one() -> None:
    calls = 0

    async def tunnels(_: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return web.json_response({"tunnels": []})  # the agent is still connecting
        return web.json_response(
            {
                "tunnels": [
                    {"public_url": "http://abc.ngrok.app"},
                    {"public_url": "https://abc.ngrok.app"},
                ]
            }
        )

    app = web.Application()
    app.router.add_get("/api/tunnels", tunnels)
    async with TestServer(app) as server:
        assert await public_url(str(server.make_url("")), 5) == "https://abc.ngrok.app"
    assert calls == 2


async def test_gives_up_when_no_agent_answers() -> None:
    assert await public_url("http://127.0.0.1:9", 0.5) is None
