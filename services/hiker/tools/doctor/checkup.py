"""``diagnose``: every check of ``hiker doctor``, in order, against one environment."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Final

import aiohttp
from pydantic_settings import BaseSettings

from hiker.core import topology
from hiker.core.settings import ApiSettings, EventsSettings, SenderSettings
from hiker.tools.doctor.ai import check_ai, wanted
from hiker.tools.doctor.config import (
    OPTIONAL_SERVICES,
    SERVICE_SETTINGS,
    common_settings,
    config_findings,
    rules_findings,
)
from hiker.tools.doctor.database import check_database
from hiker.tools.doctor.events import check_events
from hiker.tools.doctor.graph import check_graph
from hiker.tools.doctor.ingress import check_ingress_handshake
from hiker.tools.doctor.rabbitmq import check_rabbitmq
from hiker.tools.doctor.redis import check_redis
from hiker.tools.doctor.report import Finding, not_checked, scrub, secret_values
from hiker.tools.doctor.stack import ServiceEndpoint, check_services, elsewhere, services_here

DEFAULT_TIMEOUT_SECONDS: Final = 3.0
_WAIT_QUEUES: Final = "queue: idle-timer wait queues"


@dataclass(frozen=True)
class DoctorOptions:
    ingress_url: str
    phone_number_id: str | None = None
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    # The running services of a stack whose containers each see only their own variables (see
    # ``stack``); empty: this environment is every service's, as on a host with ``make run``.
    services: tuple[ServiceEndpoint, ...] = ()


async def diagnose(environ: Mapping[str, str], options: DoctorOptions) -> list[Finding]:
    """Run every check against the setup ``environ`` describes; one finding per row, in order.

    Network checks run concurrently, each bounded by ``options.timeout``.
    """
    stack = bool(options.services)
    own = services_here(environ)
    if stack:
        here = own
        # An optional service is another container's business only where the stack runs it.
        expected = {s.name for s in options.services} | (set(SERVICE_SETTINGS) - OPTIONAL_SERVICES)
    else:
        here = (set(SERVICE_SETTINGS) - OPTIONAL_SERVICES) | (own & OPTIONAL_SERVICES)
        expected = here
    findings, loaded = config_findings(environ, here)
    findings.extend(
        elsewhere(f"config: {service}", service, "its own variables")
        for service in SERVICE_SETTINGS
        if service not in here and service in expected
    )
    wait_delays_ms: list[int] | None = None
    if "conversation" in here:
        rules_finding, wait_delays_ms = rules_findings(loaded.get("conversation"))
        if rules_finding is not None:
            findings.append(rules_finding)
    groups = await asyncio.gather(
        _broker_findings(environ, wait_delays_ms, options.timeout, here, expected),
        _redis_findings(environ, options.timeout),
        _http_findings(environ, loaded, options, here),
        _database_findings(loaded, options.timeout, here, expected),
    )
    for group in groups:
        findings.extend(group)
    return scrub(findings, secret_values(environ))


async def _broker_findings(
    environ: Mapping[str, str],
    wait_delays_ms: list[int] | None,
    timeout_seconds: float,
    here: Collection[str],
    expected: Collection[str],
) -> list[Finding]:
    common = common_settings(environ)
    if common is None:
        return [not_checked("rabbitmq", "HIKER_AMQP_URL")]
    optional = [topology.API_RECORDS] if "api" in expected else []
    findings = await check_rabbitmq(
        common.amqp_url.get_secret_value(),
        wait_delays_ms or [],
        timeout_seconds,
        optional,
        quorum_group_size=common.amqp_quorum_group_size,
    )
    if "conversation" not in here:
        # Their names follow conversation's idle timeouts, which only its container knows.
        findings.append(elsewhere(_WAIT_QUEUES, "conversation", "its idle timeout and rules file"))
    elif wait_delays_ms is None:
        findings.append(not_checked("queue: idle-timer wait queue", "HIKER_IDLE_TIMEOUT_SECONDS"))
    return findings


async def _redis_findings(environ: Mapping[str, str], timeout_seconds: float) -> list[Finding]:
    common = common_settings(environ)
    if common is None:
        return [not_checked("redis", "HIKER_REDIS_URL / HIKER_REDIS_PREFIX")]
    return [await check_redis(common.redis_target(), common.redis_prefix, timeout_seconds)]


async def _database_findings(
    loaded: Mapping[str, BaseSettings],
    timeout_seconds: float,
    here: Collection[str],
    expected: Collection[str],
) -> list[Finding]:
    """The api's database, where the api's variables are; nothing where no api runs."""
    if "api" not in here:
        if "api" in expected:
            return [elsewhere("database", "api", "HIKER_DATABASE_URL")]
        return []
    api = loaded.get("api")
    if not isinstance(api, ApiSettings):
        return [not_checked("database", "the api's configuration")]
    return await check_database(api, timeout_seconds)


async def _http_findings(
    environ: Mapping[str, str],
    loaded: Mapping[str, BaseSettings],
    options: DoctorOptions,
    here: Collection[str],
) -> list[Finding]:
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=options.timeout)
    ) as session:
        services = await check_services(session, options.services)
        sender = loaded.get("sender")
        if "sender" not in here:
            graph = [
                elsewhere(check, "sender", "HIKER_ACCESS_TOKEN")
                for check in ("graph: access token", "graph: phone number id")
            ]
        elif isinstance(sender, SenderSettings):
            graph = await check_graph(session, sender, options.phone_number_id)
        else:
            graph = [not_checked("graph: access token", "the sender's configuration")]
        # The handshake needs the verify token only; the rest of ingress's configuration has
        # its own row, and need not be right for this check to say something useful.
        verify_token = environ.get("HIKER_VERIFY_TOKEN")
        if verify_token:
            ingress = await check_ingress_handshake(session, options.ingress_url, verify_token)
        elif "ingress" not in here:
            ingress = elsewhere("ingress handshake", "ingress", "HIKER_VERIFY_TOKEN")
        else:
            ingress = not_checked("ingress handshake", "HIKER_VERIFY_TOKEN")
        events = loaded.get("events")
        backend = await check_events(session, events) if isinstance(events, EventsSettings) else []
        model = [await check_ai(session, environ, options.timeout)] if wanted(environ) else []
    return [*services, *graph, ingress, *backend, *model]
