"""``diagnose``: every check of ``hiker doctor``, in order, against one environment."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import aiohttp
from pydantic_settings import BaseSettings

from hiker.core.settings import SenderSettings
from hiker.tools.doctor.config import (
    SERVICE_SETTINGS,
    common_settings,
    config_findings,
    rules_findings,
)
from hiker.tools.doctor.graph import check_graph
from hiker.tools.doctor.ingress import check_ingress_handshake
from hiker.tools.doctor.rabbitmq import check_rabbitmq
from hiker.tools.doctor.redis import check_redis
from hiker.tools.doctor.report import Finding, not_checked, scrub, secret_values

DEFAULT_TIMEOUT_SECONDS: Final = 3.0


@dataclass(frozen=True)
class DoctorOptions:
    ingress_url: str
    phone_number_id: str | None = None
    timeout: float = DEFAULT_TIMEOUT_SECONDS


async def diagnose(environ: Mapping[str, str], options: DoctorOptions) -> list[Finding]:
    """Run every check against the setup ``environ`` describes; one finding per row, in order.

    Network checks run concurrently, each bounded by ``options.timeout``.
    """
    findings, loaded = config_findings(environ, SERVICE_SETTINGS)
    rules_finding, wait_delays_ms = rules_findings(loaded.get("conversation"))
    if rules_finding is not None:
        findings.append(rules_finding)
    groups = await asyncio.gather(
        _broker_findings(environ, wait_delays_ms, options.timeout),
        _redis_findings(environ, options.timeout),
        _http_findings(environ, loaded, options),
    )
    for group in groups:
        findings.extend(group)
    return scrub(findings, secret_values(environ))


async def _broker_findings(
    environ: Mapping[str, str], wait_delays_ms: list[int] | None, timeout_seconds: float
) -> list[Finding]:
    common = common_settings(environ)
    if common is None:
        return [not_checked("rabbitmq", "HIKER_AMQP_URL")]
    findings = await check_rabbitmq(
        common.amqp_url.get_secret_value(), wait_delays_ms or [], timeout_seconds
    )
    if wait_delays_ms is None:
        findings.append(not_checked("queue: idle-timer wait queue", "HIKER_IDLE_TIMEOUT_SECONDS"))
    return findings


async def _redis_findings(environ: Mapping[str, str], timeout_seconds: float) -> list[Finding]:
    common = common_settings(environ)
    if common is None:
        return [not_checked("redis", "HIKER_REDIS_URL / HIKER_REDIS_PREFIX")]
    return [
        await check_redis(common.redis_url.get_secret_value(), common.redis_prefix, timeout_seconds)
    ]


async def _http_findings(
    environ: Mapping[str, str], loaded: Mapping[str, BaseSettings], options: DoctorOptions
) -> list[Finding]:
    async with aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=options.timeout)
    ) as session:
        sender = loaded.get("sender")
        if isinstance(sender, SenderSettings):
            graph = await check_graph(session, sender, options.phone_number_id)
        else:
            graph = [not_checked("graph: access token", "the sender's configuration")]
        # The handshake needs the verify token only; the rest of ingress's configuration has
        # its own row, and need not be right for this check to say something useful.
        verify_token = environ.get("HIKER_VERIFY_TOKEN")
        if verify_token:
            ingress = await check_ingress_handshake(session, options.ingress_url, verify_token)
        else:
            ingress = not_checked("ingress handshake", "HIKER_VERIFY_TOKEN")
    return [*graph, ingress]
