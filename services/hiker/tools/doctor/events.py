"""Events for a backend: each endpoint of ``HIKER_EVENTS_URLS`` reachable, and taking a ping
signed with ``HIKER_EVENTS_SECRET`` as ``hiker events`` signs every event.

The ping is ``{"id": "ping_…", "type": "ping", "at": …}``: a receiver answers 2xx to it (and
drops it). Rows name an endpoint by its name (host and hash), never by its URL.
"""

from __future__ import annotations

import json
import secrets
import time

import aiohttp

from hiker.core.endpoints import Endpoint
from hiker.core.settings import EventsSettings
from hiker.events.client import EndpointClient
from hiker.events.model import iso
from hiker.tools.doctor.report import Finding, Status


async def check_events(session: aiohttp.ClientSession, settings: EventsSettings) -> list[Finding]:
    secret = settings.events_secret.get_secret_value().encode()
    return [await _ping(session, endpoint, secret) for endpoint in settings.endpoints()]


async def _ping(session: aiohttp.ClientSession, endpoint: Endpoint, secret: bytes) -> Finding:
    check = f"events: endpoint {endpoint.index + 1} ({endpoint.name})"
    ping_id = f"ping_{secrets.token_hex(8)}"
    body = json.dumps({"id": ping_id, "type": "ping", "at": iso(time.time())}).encode()
    posted = await EndpointClient(session, endpoint.url, secret).post(body, ping_id)
    status = posted.answer.http_status
    took = f"{posted.seconds * 1000:.0f} ms"
    if status is not None and 200 <= status < 300:
        return Finding(check, Status.OK, f"took a signed ping (HTTP {status}, {took})")
    if status in (401, 403):
        return Finding(
            check,
            Status.FAIL,
            f"refused a signed ping (HTTP {status})",
            "the receiver must check X-Hiker-Signature-256 with the value of "
            "HIKER_EVENTS_SECRET; until then every event is parked at once",
        )
    if status is not None and 400 <= status < 500 and status not in (408, 429):
        return Finding(
            check,
            Status.WARN,
            f"answers, but HTTP {status} to a ping",
            "a receiver should answer 2xx to type ping; check the URL's path: any 4xx other "
            "than 408/429 to an event parks it at once",
        )
    return Finding(
        check,
        Status.FAIL,
        f"not taking events ({posted.answer.label})",
        "start the receiver or fix HIKER_EVENTS_URLS; events wait in their queue and are "
        "retried up to HIKER_EVENTS_RETRY_HOURS, then parked (`hiker parked list --events`)",
    )
