"""Logs, metrics and health endpoints, the same for every service.

Logs are JSON lines with the service name and ids; phone numbers are masked before a record
leaves the process. Metrics live in a registry per application (not the global one) so that tests
can run several services in one process.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from pythonjsonlogger.orjson import OrjsonFormatter

# Record attributes that may hold a user's phone number.
PHONE_FIELDS: Final = frozenset({"user", "to", "from_", "wa_id", "recipient_id", "recipient"})
# Long digit runs in free text: MSISDNs are 8 to 15 digits (E.164).
_PHONE_IN_TEXT: Final = re.compile(r"(?<![\w.])\+?\d{4,11}(\d{4})(?!\w)")


def mask_phone(value: object) -> str:
    """``15551234567`` → ``*******4567``: enough to tell users apart, not to reach them."""
    text = str(value)
    if len(text) <= 4:
        return "*" * len(text)
    return "*" * (len(text) - 4) + text[-4:]


def mask_text(text: str) -> str:
    return _PHONE_IN_TEXT.sub(lambda m: "*" * (len(m.group(0)) - 4) + m.group(1), text)


def redact(url: str) -> str:
    """``amqp://hiker:secret@rabbit/prod`` → ``amqp://hiker:***@rabbit/prod``: fit to print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    # The hosts as written: a list of nodes (``h1:5672,h2:5672``) has no single port to parse.
    hosts = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{hosts}"))


class _MaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for name in PHONE_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                record.__dict__[name] = mask_phone(value)
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        if isinstance(record.msg, str):
            record.msg = mask_text(record.msg)
        return True


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send JSON lines to stderr: time, level, service, event (the message) and any extras."""
    # A line is written for every message handled: skip what no field uses (the caller's frame,
    # thread and process names; the logging HOWTO's "Optimization" section).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        OrjsonFormatter(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "message": "event"},
            static_fields={"service": service},
        )
    )
    handler.addFilter(_MaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aio-pika and aiormq narrate every reconnect attempt at INFO; warnings are what matter.
    for noisy in ("aiormq", "aio_pika", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def new_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


ReadinessCheck = Callable[[], Awaitable[bool]]


def add_ops_routes(
    app: web.Application,
    registry: CollectorRegistry,
    readiness: Mapping[str, ReadinessCheck],
) -> None:
    """``/metrics`` (Prometheus), ``/healthz`` (the loop answers) and ``/readyz`` (dependencies)."""

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(_: web.Request) -> web.Response:
        results: dict[str, Any] = {}
        for name, check in readiness.items():
            try:
                results[name] = await check()
            except Exception:  # a failing probe means "not ready", never a 500
                results[name] = False
        ready = all(results.values())
        return web.json_response(
            {"status": "ready" if ready else "not ready", "checks": results},
            status=200 if ready else 503,
        )

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
