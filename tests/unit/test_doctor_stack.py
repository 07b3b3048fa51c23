"""``hiker doctor`` in a stack whose containers each see only their own variables."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from hiker.tools.doctor.report import Finding, Status, exit_code, render_table
from hiker.tools.doctor.stack import (
    COMPOSE_INGRESS_URL,
    COMPOSE_SERVICES,
    ServiceEndpoint,
    check_services,
    elsewhere,
    services_here,
)

COMPOSE_FILE = Path(__file__).parents[2] / "deploy" / "compose" / "compose.yaml"


def test_the_compose_addresses_are_the_compose_files() -> None:
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    for endpoint in COMPOSE_SERVICES:
        port = services[endpoint.name]["environment"]["HIKER_METRICS_PORT"]
        assert endpoint.url == f"http://{endpoint.name}:{port}"
    ingress = services["ingress"]["environment"]
    assert f"http://ingress:{ingress['HIKER_HTTP_PORT']}/webhook" == COMPOSE_INGRESS_URL


def test_a_container_is_known_by_the_variables_only_its_service_has() -> None:
    assert services_here({"HIKER_AMQP_URL": "amqp://x"}) == set()
    assert services_here({"HIKER_ACCESS_TOKEN": "t"}) == {"sender"}
    assert services_here({"HIKER_VERIFY_TOKEN": "v", "HIKER_APP_SECRET": "s"}) == {"ingress"}
    assert services_here({"HIKER_APP_SECRETS": "s,t"}) == {"ingress"}
    assert services_here({"HIKER_IDLE_TIMEOUT_SECONDS": "20"}) == {"conversation"}
    # A host with every variable (``make run``) is every service's.
    assert services_here(
        {"HIKER_ACCESS_TOKEN": "t", "HIKER_VERIFY_TOKEN": "v", "HIKER_RULES_FILE": "r.yaml"}
    ) == {"ingress", "conversation", "sender"}


def test_rows_checked_elsewhere_never_fail_the_run_and_are_counted() -> None:
    findings = [
        Finding("rabbitmq", Status.OK, "connected"),
        elsewhere("graph: access token", "sender", "HIKER_ACCESS_TOKEN"),
    ]
    assert exit_code(findings, strict=True) == 0
    table = render_table(findings, width=200)
    assert "checked in the sender container" in table
    assert "docker compose exec sender hiker doctor --compose" in table
    assert table.splitlines()[-1] == "0 failed, 0 warnings, 1 ok, 1 checked in other containers"


@pytest.fixture
async def readiness() -> AsyncIterator[TestServer]:
    """A service whose Redis is away: ``/readyz`` answers 503 and names it."""

    async def readyz(_: web.Request) -> web.Response:
        return web.json_response(
            {"status": "not ready", "checks": {"rabbitmq": True, "redis": False}}, status=503
        )

    app = web.Application()
    app.router.add_get("/readyz", readyz)
    server = TestServer(app)
    await server.start_server()
    yield server
    await server.close()


async def test_a_service_not_ready_names_what_it_waits_for(readiness: TestServer) -> None:
    services = [
        ServiceEndpoint("sender", str(readiness.make_url("/"))),
        ServiceEndpoint("conversation", "http://127.0.0.1:1"),
    ]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        sender, conversation = await check_services(session, services)
    assert sender.status is Status.FAIL
    assert sender.detail == "running but not ready: redis not usable (HTTP 503)"
    assert conversation.status is Status.FAIL
    assert conversation.detail.startswith("no answer from http://127.0.0.1:1/readyz")
