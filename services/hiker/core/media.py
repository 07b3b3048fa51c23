"""Media kept once, by their content: the errors a download raises, and the object store.

A medium's bytes are stored under ``sha256/<hex digest>``, so the same photo sent twice (or by
two users) is kept once, and a download whose digest Meta announced finds it without asking
Graph again. The store is named by a URL and opened by obstore (``file://``, ``s3://``,
``gs://``, ``az://``, ``memory://``), the credentials coming from each cloud's usual variables
(``AWS_*``, ``GOOGLE_*``, ``AZURE_*``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import obstore
from obstore.store import MemoryStore, ObjectStore, from_url

__all__ = [
    "MediaError",
    "MediaExpired",
    "MediaMismatch",
    "MediaSource",
    "MediaStore",
    "MediaTooLarge",
    "MediaUnavailable",
    "hex_digest",
]


class MediaError(Exception):
    """A medium could not be had; the message says why (never a token, never the URL)."""


class MediaExpired(MediaError):
    """Graph no longer knows the media id (Meta keeps inbound media for a limited time), or
    the download URL it gave is gone."""


class MediaTooLarge(MediaError):
    """The medium is larger than ``HIKER_MEDIA_MAX_BYTES``; nothing past the limit was read."""


class MediaMismatch(MediaError):
    """The bytes downloaded do not have the sha256 Meta announced for them."""


class MediaUnavailable(MediaError):
    """Graph kept failing, refused the token, or no media source is configured."""


class MediaSource(Protocol):
    """What a message view's ``download()`` asks for a medium's bytes."""

    async def fetch(self, phone_number_id: str, media_id: str, sha256: str | None) -> bytes:
        """The bytes of ``media_id`` (received on ``phone_number_id``), stored once; ``sha256``
        is the digest Meta announced with the message, when it did."""
        ...


def hex_digest(announced: str | None) -> str | None:
    """Meta's ``sha256`` as a hex digest: webhooks give it base64-encoded, Graph's media
    endpoint in hex; None when it is neither."""
    if not announced:
        return None
    text = announced.strip()
    if len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text):
        return text.lower()
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == hashlib.sha256().digest_size else None


class MediaStore:
    """Bytes by their sha256, in an object store."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MediaStore:
        """The store ``url`` names; a ``file://`` folder is made when missing. ``options`` go
        to obstore (an S3 ``endpoint``, say); raises ValueError on a URL it cannot open."""
        scheme = urlsplit(url).scheme
        if scheme == "memory":
            return cls(MemoryStore())
        try:
            if scheme == "file":
                Path(urlsplit(url).path).mkdir(parents=True, exist_ok=True)
            return cls(from_url(url, **options))
        except Exception as exc:  # obstore's own error types; the URL holds no secret
            raise ValueError(f"cannot open the media store {url!r}: {exc}") from None

    @staticmethod
    def key(digest: str) -> str:
        return f"sha256/{digest}"

    async def get(self, digest: str) -> bytes | None:
        """The bytes of ``digest`` (hex), None when the store has none."""
        try:
            result = await obstore.get_async(self._store, self.key(digest))
        except FileNotFoundError:
            return None
        return bytes(await result.bytes_async())

    async def put(self, data: bytes) -> str:
        """Keep ``data`` (once: bytes already there are not written again); its hex digest."""
        digest = hashlib.sha256(data).hexdigest()
        try:
            await obstore.head_async(self._store, self.key(digest))
        except FileNotFoundError:
            await obstore.put_async(self._store, self.key(digest), data)
        return digest

    async def size(self, digest: str) -> int | None:
        try:
            meta: Mapping[str, Any] = await obstore.head_async(self._store, self.key(digest))
        except FileNotFoundError:
            return None
        return int(meta["size"])

    async def delete(self, digest: str) -> None:
        """Remove the bytes of ``digest`` (nothing when they are not there)."""
        with contextlib.suppress(FileNotFoundError):
            await obstore.delete_async(self._store, self.key(digest))
