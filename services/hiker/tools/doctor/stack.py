"""A stack whose services each see only their own variables (compose, one pod per service).

There, one environment cannot check everything: the Graph token is in the sender's alone, the
verify token in ingress's, the idle timeout and rules file in conversation's. Doctor then asks
every service whether it is ready (``/readyz`` on its operations port: a service validates its
settings at start and does not run without them), checks what every container shares (RabbitMQ
and its topology, Redis) and the rows whose variables it has, and marks the others as checked in
the container that has them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import aiohttp

from hiker.tools.doctor.report import Finding, Status


@dataclass(frozen=True)
class ServiceEndpoint:
    name: str
    url: str  # its operations address (``HIKER_METRICS_PORT``), where ``/readyz`` answers


# The addresses in deploy/compose/compose.yaml, as seen from any of its containers.
COMPOSE_SERVICES: Final = (
    ServiceEndpoint("ingress", "http://ingress:9101"),
    ServiceEndpoint("conversation", "http://conversation:9102"),
    ServiceEndpoint("sender", "http://sender:9103"),
    ServiceEndpoint("api", "http://api:9105"),
)
COMPOSE_INGRESS_URL: Final = "http://ingress:8080/webhook"

# Variables each service alone is given; one of them set means this is that service's container.
OWN_VARIABLES: Final[Mapping[str, tuple[str, ...]]] = {
    "ingress": ("HIKER_APP_SECRET", "HIKER_APP_SECRETS", "HIKER_VERIFY_TOKEN"),
    "conversation": ("HIKER_IDLE_TIMEOUT_SECONDS", "HIKER_RULES_FILE", "HIKER_FOLLOWUP_TEXT"),
    "sender": ("HIKER_ACCESS_TOKEN",),
    "api": ("HIKER_API_TOKEN", "HIKER_DATABASE_URL"),
    "events": ("HIKER_EVENTS_URLS", "HIKER_EVENTS_SECRET"),
}


def services_here(environ: Mapping[str, str]) -> set[str]:
    """The services whose own variables this environment holds."""
    return {
        service
        for service, names in OWN_VARIABLES.items()
        if any(environ.get(name) for name in names)
    }


def elsewhere(check: str, service: str, needs: str) -> Finding:
    """The row of a check that needs ``service``'s variables, run where they are not."""
    return Finding(
        check,
        Status.SKIP,
        f"checked in the {service} container (needs {needs}, which only it has)",
        f"run the same command there: `docker compose exec {service} hiker doctor --compose` "
        "(or in the service's pod)",
    )


async def check_services(
    session: aiohttp.ClientSession, services: Sequence[ServiceEndpoint]
) -> list[Finding]:
    """A row per service: ready, not ready (and which dependency), or not answering."""
    return list(await asyncio.gather(*(_check_service(session, s) for s in services)))


async def _check_service(session: aiohttp.ClientSession, service: ServiceEndpoint) -> Finding:
    check = f"service: {service.name}"
    url = f"{service.url.rstrip('/')}/readyz"
    try:
        async with session.get(url) as response:
            status = response.status
            body = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return Finding(
            check,
            Status.FAIL,
            f"no answer from {url} ({type(exc).__name__})",
            f"is it running? `docker compose ps {service.name}`; its log says why it stopped "
            f"(`docker compose logs {service.name}`)",
        )
    checks = body.get("checks") if isinstance(body, dict) else None
    results = checks if isinstance(checks, dict) else {}
    if status == 200:
        named = ", ".join(sorted(results)) or "nothing"
        return Finding(check, Status.OK, f"ready ({named}); it started with valid settings")
    failing = ", ".join(sorted(name for name, ok in results.items() if not ok)) or "unknown"
    return Finding(
        check,
        Status.FAIL,
        f"running but not ready: {failing} not usable (HTTP {status})",
        f"see the rows for {failing} below, and `docker compose logs {service.name}`",
    )
