"""Graph's media flow: a media id → a short-lived URL → the bytes, checked and stored once.

``GET /{version}/{media-id}`` with the number's token answers ``url``, ``mime_type``,
``sha256``, ``file_size`` and ``id``; the URL (valid for minutes) is fetched with the same
token. Meta keeps inbound media for a limited time: past it Graph answers that the object does
not exist, which is ``MediaExpired`` here. Graph's passing failures (5xx, 429, timeouts, a
connection lost) are tried again with backoff; what stays failing is ``MediaUnavailable``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp

from hiker.core.media import (
    MediaExpired,
    MediaMismatch,
    MediaStore,
    MediaTooLarge,
    MediaUnavailable,
    hex_digest,
)
from hiker.core.retrying import Backoff
from hiker.core.settings import AccessTokens, ConfigError, MediaSettings

log = logging.getLogger(__name__)
T = TypeVar("T")

# Graph's code for an object that does not exist (or the token may not see): an expired id.
_NO_SUCH_OBJECT = 100
_READ_CHUNK = 64 * 1024


class _Transient(Exception):
    """A failure worth another attempt; its text says what it was."""


@dataclass
class GraphMedia:
    """Downloads media through Graph for the numbers ``tokens`` has tokens for, into ``store``.

    ``session`` is called once, on the first download (a session is made in the running loop).
    """

    session: Callable[[], aiohttp.ClientSession]
    base_url: str
    api_version: str
    tokens: AccessTokens
    store: MediaStore
    max_bytes: int
    attempts: int = 4
    backoff: Callable[[], Backoff] = field(default=lambda: Backoff(first=0.5, most=4.0))
    _client: aiohttp.ClientSession | None = field(default=None, init=False, repr=False)

    async def fetch(self, phone_number_id: str, media_id: str, sha256: str | None) -> bytes:
        """The bytes of ``media_id``: from the store when Meta's digest is already there, else
        through Graph, checked against the digest and kept in the store."""
        announced = hex_digest(sha256)
        if announced is not None:
            kept = await self.store.get(announced)
            if kept is not None:
                return kept
        token = self.tokens.for_number(phone_number_id)
        if token is None:
            raise MediaUnavailable(
                "no Graph token for this phone number: set HIKER_ACCESS_TOKEN(S) for "
                "conversation to download media"
            )
        headers = {"Authorization": f"Bearer {token.get_secret_value()}"}
        described = await self._retrying(media_id, lambda: self._describe(media_id, headers))
        data = await self._retrying(media_id, lambda: self._download(described, headers))
        digest = hashlib.sha256(data).hexdigest()
        for expected in (hex_digest(_str(described, "sha256")), announced):
            if expected is not None and expected != digest:
                raise MediaMismatch(
                    f"media {media_id}: the bytes downloaded do not have the sha256 Meta "
                    "announced (a corrupt or substituted download)"
                )
        await self.store.put(data)
        return data

    async def _retrying(self, media_id: str, attempt: Callable[[], Awaitable[T]]) -> T:
        backoff = self.backoff()
        for number in range(1, self.attempts + 1):
            try:
                return await attempt()
            except _Transient as exc:
                if number == self.attempts:
                    raise MediaUnavailable(
                        f"media {media_id}: Graph kept failing ({exc}) after {number} attempts"
                    ) from None
                log.warning("media download failed (%s); retrying", exc)
                await asyncio.sleep(backoff.next_delay())
        raise AssertionError("unreachable")

    async def _describe(self, media_id: str, headers: dict[str, str]) -> dict[str, Any]:
        url = f"{self.base_url.rstrip('/')}/{self.api_version}/{media_id}"
        async with _request(self._session(), url, headers, redirects=False) as response:
            if response.status == 200:
                body = await response.json(content_type=None)
                if not isinstance(body, dict) or not isinstance(body.get("url"), str):
                    raise MediaUnavailable(f"media {media_id}: Graph's answer has no url")
                size = _size(body.get("file_size"))
                if size is not None and size > self.max_bytes:
                    raise _too_large(media_id, size, self.max_bytes)
                return body
            await _refuse(media_id, response, "Graph")
        raise AssertionError("unreachable")

    async def _download(self, described: dict[str, Any], headers: dict[str, str]) -> bytes:
        media_id = str(described.get("id") or "?")
        # Followed: Meta does not promise the bytes at that very URL (aiohttp drops the token
        # on a redirect to another host).
        url = str(described["url"])
        async with _request(self._session(), url, headers, redirects=True) as response:
            if response.status != 200:
                await _refuse(media_id, response, "the media URL")
            if response.content_length is not None and response.content_length > self.max_bytes:
                raise _too_large(media_id, response.content_length, self.max_bytes)
            data = bytearray()
            try:
                async for chunk in response.content.iter_chunked(_READ_CHUNK):
                    data += chunk
                    if len(data) > self.max_bytes:
                        raise _too_large(media_id, None, self.max_bytes)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _Transient(type(exc).__name__) from None
            return bytes(data)

    def _session(self) -> aiohttp.ClientSession:
        if self._client is None:
            self._client = self.session()
        return self._client


class _request:
    """A GET whose connection failures and timeouts are ``_Transient``."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        headers: dict[str, str],
        *,
        redirects: bool,
    ) -> None:
        self._call = session.get(url, headers=headers, allow_redirects=redirects, max_redirects=3)
        self._response: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> aiohttp.ClientResponse:
        try:
            self._response = await self._call
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _Transient(type(exc).__name__) from None
        return self._response

    async def __aexit__(self, *_: object) -> None:
        if self._response is not None:
            self._response.release()


async def _refuse(media_id: str, response: aiohttp.ClientResponse, what: str) -> None:
    """Raise what a non-200 answer means: transient, expired, or refused."""
    status = response.status
    if status == 429 or status >= 500:
        raise _Transient(f"HTTP {status}")
    code: int | None = None
    try:
        error = (await response.json(content_type=None)).get("error", {})
        code = int(error["code"]) if isinstance(error, dict) and "code" in error else None
    except (ValueError, TypeError, AttributeError, aiohttp.ContentTypeError):
        pass
    if status == 404 or code == _NO_SUCH_OBJECT:
        raise MediaExpired(
            f"media {media_id}: {what} no longer has it (Meta keeps media for a limited "
            "time; the id expired or was never this number's)"
        )
    detail = f"HTTP {status}" + (f", Graph error {code}" if code is not None else "")
    raise MediaUnavailable(f"media {media_id}: {what} refused the download ({detail})")


def _too_large(media_id: str, size: int | None, limit: int) -> MediaTooLarge:
    what = f"{size} bytes" if size is not None else "more bytes"
    return MediaTooLarge(
        f"media {media_id}: {what} than HIKER_MEDIA_MAX_BYTES ({limit}) allows"
        if size is None
        else f"media {media_id} has {what}, over HIKER_MEDIA_MAX_BYTES ({limit})"
    )


def _size(value: Any) -> int | None:
    # Graph gives file_size as a number or a numeric string.
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    return value if isinstance(value, str) else None


def graph_media(
    settings: MediaSettings, session: Callable[[], aiohttp.ClientSession]
) -> GraphMedia:
    """The media source ``settings`` describe; ConfigError naming HIKER_MEDIA_STORE when the
    store's URL cannot be opened."""
    try:
        store = MediaStore.from_url(settings.media_store_url())
    except ValueError as exc:
        raise ConfigError(f"HIKER_MEDIA_STORE is invalid: {exc}") from None
    return GraphMedia(
        session=session,
        base_url=str(settings.graph_base_url),
        api_version=settings.graph_api_version,
        tokens=settings.graph_tokens(),
        store=store,
        max_bytes=settings.media_max_bytes,
    )
