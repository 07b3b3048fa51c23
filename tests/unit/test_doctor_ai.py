"""``hiker doctor``'s model row against ``hiker aimock``: one tiny call, its latency or what went
wrong with a fix, and the key nowhere."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import BaseTestServer, TestServer

from hiker.aimock.app import create_app
from hiker.core.settings import AIMockSettings, load_settings
from hiker.tools.doctor.ai import check_ai, wanted
from hiker.tools.doctor.report import Status, secret_values
from tests.support import free_port

KEY = "sk-doctor-7d1e9f0a3c"


@pytest.fixture
async def mock() -> AsyncIterator[tuple[BaseTestServer, aiohttp.ClientSession]]:
    settings = load_settings(AIMockSettings, {"HIKER_AIMOCK_API_KEY": KEY})
    async with TestServer(create_app(settings)) as server, aiohttp.ClientSession() as session:
        yield server, session


def env(server: BaseTestServer, key: str = KEY) -> dict[str, str]:
    return {
        "HIKER_AI_BASE_URL": str(server.make_url("/v1")),
        "HIKER_AI_MODEL": "hiker-mock",
        "HIKER_AI_API_KEY": key,
    }


async def test_a_model_that_answers_is_ok_with_its_latency_and_tokens(
    mock: tuple[BaseTestServer, aiohttp.ClientSession],
) -> None:
    server, session = mock
    finding = await check_ai(session, env(server), 3.0)
    assert finding.status is Status.OK
    assert finding.detail.startswith("hiker-mock at http://127.0.0.1:")
    assert " ms (" in finding.detail
    assert "tokens" in finding.detail
    async with session.get(server.make_url("/_mock/requests")) as response:
        (asked,) = await response.json()
    assert len(asked["body"]["messages"]) == 1


async def test_a_wrong_key_fails_naming_the_variable_never_the_key(
    mock: tuple[BaseTestServer, aiohttp.ClientSession],
) -> None:
    server, session = mock
    wrong = "sk-wrong-0123456789"
    finding = await check_ai(session, env(server, wrong), 3.0)
    assert finding.status is Status.FAIL
    assert "HTTP 401" in finding.detail
    assert "HIKER_AI_API_KEY" in finding.fix
    assert wrong not in finding.detail + finding.fix
    assert KEY not in finding.detail + finding.fix
    assert wrong in secret_values(env(server, wrong))


async def test_rate_limited_warns_and_a_down_server_fails(
    mock: tuple[BaseTestServer, aiohttp.ClientSession],
) -> None:
    server, session = mock
    script = {"answers": [{"status": 429, "retry_after": 20}, {"status": 404}]}
    async with session.post(server.make_url("/_mock/script"), json=script) as response:
        assert response.status == 200
    limited = await check_ai(session, env(server), 3.0)
    unknown = await check_ai(session, env(server), 3.0)
    down = await check_ai(
        session, {**env(server), "HIKER_AI_BASE_URL": f"http://127.0.0.1:{free_port()}/v1"}, 3.0
    )

    assert limited.status is Status.WARN
    assert "retry after 20s" in limited.detail
    assert unknown.status is Status.FAIL
    assert "HIKER_AI_MODEL" in unknown.fix
    assert down.status is Status.FAIL
    assert "refused" in down.detail
    assert "HIKER_AI_BASE_URL" in down.fix


def test_the_row_appears_only_where_the_responder_is_configured() -> None:
    assert not wanted({})
    assert wanted({"HIKER_AI_BASE_URL": "http://127.0.0.1:8091/v1"})
