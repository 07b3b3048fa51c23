"""Logs, metrics and health endpoints, the same for every service.

Logs are JSON lines with the service name and ids; phone numbers are masked before a record
leaves the process. Metrics live in a registry per application (not the global one) so that tests
can run several services in one process.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
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


# What every LogRecord has: the rest are a caller's extras, each looked at for numbers.
_EMPTY_RECORD: Final = logging.LogRecord("", 0, "", 0, "", None, None)
_RECORD_ATTRIBUTES: Final = frozenset({*vars(_EMPTY_RECORD), "message", "asctime"})
# The fewest digits ``mask_text`` masks (a run of 8 to 15).
_SHORTEST_MASKED: Final = 8
# Extras that hold a business's own ids, not a person's number: kept readable.
_NOT_PHONES: Final = frozenset({"phone_number_id"})


def _masked(name: str, value: object) -> object:
    """``value`` of the extra ``name`` with every phone number in it masked, however deep."""
    if value is None or name in _NOT_PHONES:
        return value
    if name in PHONE_FIELDS:
        return mask_phone(value)
    if isinstance(value, str):
        # Shorter than the shortest number the pattern masks: nothing to look for.
        return mask_text(value) if len(value) >= _SHORTEST_MASKED else value
    if isinstance(value, dict):
        return {key: _masked(str(key), item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(name, item) for item in value]
    return value


class MaskingFilter(logging.Filter):
    """Masks phone numbers in every part of a record before it is written: the message, every
    extra (nested ones included: a Graph error, a detail), the traceback and the stack."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__
        for name in fields.keys() - _RECORD_ATTRIBUTES:  # a set difference, in C: every line
            fields[name] = _masked(name, fields[name])
        if record.args:
            record.msg = record.getMessage()
            record.args = None
        if isinstance(record.msg, str):
            record.msg = mask_text(record.msg)
        if record.exc_info:
            # A traceback quotes the values it passed through (a URL with a number, a
            # KeyError's key): it is written from this masked text, never formatted again.
            record.exc_text = mask_text("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
        return True


def json_lines(service: str) -> logging.Formatter:
    """The format of every log line: one JSON object with time, level, service and event."""
    return OrjsonFormatter(
        "{asctime}{levelname}{name}{message}",
        style="{",
        rename_fields={"asctime": "time", "levelname": "level", "message": "event"},
        static_fields={"service": service},
    )


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send JSON lines to stderr: time, level, service, event (the message) and any extras."""
    # A line is written for every message handled: skip what no field uses (the caller's frame,
    # thread and process names; the logging HOWTO's "Optimization" section).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(json_lines(service))
    handler.addFilter(MaskingFilter())
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
