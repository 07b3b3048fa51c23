"""HTTP adapter: POST one signed body to one endpoint, and say how it ended.

Every failure becomes an ``Answer`` here (a status, a timeout, a connection error) and none is
raised: an endpoint's trouble is a fact about that endpoint, never one about Hiker's own
dependencies, so it must not reach the consumer's error classification (which would close
the service's dependency gate and stop the other endpoints).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

import aiohttp

from hiker.core.signature import sign
from hiker.events.delivery import Answer, retry_after
from hiker.events.model import SIGNATURE_HEADER

USER_AGENT: Final = "hiker-events/1"
# What is read of an answer: enough to drain a small body, never a large one into memory.
_MAX_ANSWER_BYTES: Final = 64 * 1024


@dataclass(frozen=True)
class Posted:
    answer: Answer
    seconds: float


class EndpointClient:
    """POSTs events to one URL through a session of its own (its own connections: a slow
    endpoint never holds a connection another endpoint needs)."""

    def __init__(self, session: aiohttp.ClientSession, url: str, secret: bytes) -> None:
        self._session = session
        self._url = url
        self._secret = secret

    def headers(self, body: bytes, event_id: str) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: sign(self._secret, body),
            "X-Hiker-Event-Id": event_id,
        }

    async def post(self, body: bytes, event_id: str) -> Posted:
        started = time.perf_counter()
        try:
            async with self._session.post(
                self._url, data=body, headers=self.headers(body, event_id), allow_redirects=False
            ) as response:
                await response.content.read(_MAX_ANSWER_BYTES)
                answer = Answer(
                    response.status,
                    retry_after_seconds=retry_after(response.headers.get("Retry-After")),
                )
        except TimeoutError:
            answer = Answer(None, failure="timeout")
        except (aiohttp.ClientError, OSError):
            answer = Answer(None, failure="connection_error")
        return Posted(answer, time.perf_counter() - started)
