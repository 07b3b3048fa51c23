"""How much of a webhook request ingress takes in, for how long, and how many at once.

Ingress must read a body before it can check its signature, so whatever an anonymous client
sends is held until then. What nginx bounds with ``client_max_body_size`` and
``client_body_timeout`` is bounded here, before anything is buffered:

- a body declared larger than the limit is refused 413 before a byte of it is read; one that
  streams past the limit without declaring its length (chunked) is refused as it crosses it;
- the whole body must arrive within a deadline from the headers, answered 408 and closed past
  it (a total, where nginx times the gap between two reads: a client trickling a byte every few
  seconds would otherwise hold its request, and its buffer, for ever);
- only so many requests are read or handled at once; past that, 503 with Retry-After at once
  (Meta retries), rather than one more buffer. Memory for bodies stays under the count times
  the size limit, and a stalled client holds its place only until its deadline.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web

from hiker.core.settings import IngressSettings


@dataclass(frozen=True)
class RequestLimits:
    """The bounds above; the defaults are ``IngressSettings``'s."""

    max_body_bytes: int = 1024 * 1024
    body_timeout_seconds: float = 10.0
    max_concurrent: int = 128

    @classmethod
    def of(cls, settings: IngressSettings) -> RequestLimits:
        return cls(
            max_body_bytes=settings.max_body_bytes,
            body_timeout_seconds=settings.body_timeout_seconds,
            max_concurrent=settings.max_concurrent_requests,
        )


class BodyTooLarge(Exception):
    """The body is (or is declared) larger than the limit."""


class BodyTimedOut(Exception):
    """The body did not arrive whole within the deadline."""


class InFlight:
    """Counts the webhook requests being read or handled; refuses one past the limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def enter(self) -> bool:
        """Take a place; False when every place is taken (the caller answers 503)."""
        if self.count >= self.limit:
            return False
        self.count += 1
        return True

    def leave(self) -> None:
        self.count -= 1


async def read_body(request: web.Request, limits: RequestLimits) -> bytes:
    """The request's body, within ``limits``: BodyTooLarge, BodyTimedOut, or
    ``RequestPayloadError`` when it breaks its own transfer encoding.

    Read chunk by chunk rather than with ``request.read()``, which raises the stream's buffer
    to twice the size limit per request before the first byte is checked.
    """
    declared = request.content_length
    if declared is not None and declared > limits.max_body_bytes:
        raise BodyTooLarge
    body = bytearray()
    try:
        async with asyncio.timeout(limits.body_timeout_seconds):
            while chunk := await request.content.readany():
                if len(body) + len(chunk) > limits.max_body_bytes:
                    raise BodyTooLarge
                body += chunk
    except TimeoutError:
        raise BodyTimedOut from None
    return bytes(body)
