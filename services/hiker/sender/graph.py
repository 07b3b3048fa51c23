"""Graph API adapter: ``POST /{version}/{phone_number_id}/messages`` with the bearer token."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from pydantic import SecretStr

from hiker.core.contracts import SendMessage
from hiker.sender.retry import GraphOutcome


@dataclass(frozen=True)
class GraphCall:
    outcome: GraphOutcome
    latency_seconds: float
    # Graph's error object as returned, kept with parked messages for the operator.
    error: dict[str, Any] | None = None


class GraphClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        api_version: str,
        access_token: SecretStr,
    ) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self._version = api_version
        self._headers = {
            "Authorization": f"Bearer {access_token.get_secret_value()}",
            "Content-Type": "application/json",
        }

    async def send(self, command: SendMessage) -> GraphCall:
        url = f"{self._base}/{self._version}/{command.phone_number_id}/messages"
        payload = orjson.dumps(message_payload(command))
        started = time.perf_counter()
        try:
            async with self._session.post(url, data=payload, headers=self._headers) as response:
                body = await _json(response)
                latency = time.perf_counter() - started
                return _interpret(response.status, response.headers, body, latency)
        except TimeoutError:
            failure = "timeout"
        except aiohttp.ClientError:
            failure = "connection_error"
        return GraphCall(
            GraphOutcome(http_status=None, failure=failure), time.perf_counter() - started
        )


def message_payload(command: SendMessage) -> dict[str, Any]:
    """The Graph request body for ``command``: a text, or an approved template."""
    payload: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": command.to,
    }
    if command.template is not None:
        payload["type"] = "template"
        payload["template"] = {
            "name": command.template.name,
            "language": {"code": command.template.language},
        }
    else:
        payload["type"] = "text"
        payload["text"] = {"preview_url": False, "body": command.text}
    return payload


async def _json(response: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        body = orjson.loads(await response.read())
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def _interpret(status: int, headers: Any, body: dict[str, Any], latency: float) -> GraphCall:
    error = body.get("error") if isinstance(body.get("error"), dict) else None
    messages = body.get("messages")
    message_id = None
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        message_id = messages[0].get("id")
    code = error.get("code") if error else None
    return GraphCall(
        GraphOutcome(
            http_status=status,
            error_code=code if isinstance(code, int) else None,
            message_id=message_id if isinstance(message_id, str) else None,
            retry_after_seconds=_retry_after(headers.get("Retry-After")),
        ),
        latency,
        error,
    )


def _retry_after(value: str | None) -> float | None:
    # Graph sends delta-seconds; an HTTP date is rare enough to fall back to our own backoff.
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
