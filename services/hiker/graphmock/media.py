"""The Graph mock's media: upload, the id → URL → bytes download flow, and expiry, as Graph.

- ``POST /{version}/{phone_number_id}/media``: multipart (``messaging_product``, ``type``,
  ``file``) → ``{"id": "<media id>"}``.
- ``GET /{version}/{media-id}``: ``{"messaging_product", "url", "mime_type", "sha256",
  "file_size", "id"}``; the URL answers the bytes, with the same bearer token, for
  ``URL_TTL_SECONDS``. An expired or unknown id gets Graph's error 100 (HTTP 400).
- ``POST /_mock/media/{media-id}/expire``: the id expires now (as Meta's do after a while).
- ``POST /_mock/faults`` with ``"to": "media"`` scripts answers to ``GET /{version}/{media-id}``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import BodyPartReader, web

# What ``POST /_mock/faults`` names as ``to`` to script the answers to media look-ups.
MEDIA = "media"
# Meta's download URLs are valid for 5 minutes.
URL_TTL_SECONDS = 300.0
# How long an uploaded medium stays (Meta: 30 days).
MEDIA_TTL_SECONDS = 30 * 86400.0
# Graph's limit for a document, the largest kind.
MAX_UPLOAD_BYTES = 100 * 1024 * 1024


@dataclass
class Medium:
    id: str
    phone_number_id: str
    mime_type: str
    data: bytes
    expires_at: float
    # The secret part of its download URL, and when that URL stops working.
    url_key: str = ""
    url_expires_at: float = 0.0


@dataclass
class MediaShelf:
    """What was uploaded, by media id."""

    media: dict[str, Medium] = field(default_factory=dict)
    clock: Callable[[], float] = time.time

    def add(self, phone_number_id: str, mime_type: str, data: bytes) -> Medium:
        media_id = str(10**15 + secrets.randbelow(10**15))
        medium = Medium(
            media_id, phone_number_id, mime_type, data, self.clock() + MEDIA_TTL_SECONDS
        )
        self.media[media_id] = medium
        return medium

    def live(self, media_id: str) -> Medium | None:
        medium = self.media.get(media_id)
        return medium if medium is not None and medium.expires_at > self.clock() else None


def not_found(media_id: str) -> web.Response:
    """Graph's answer for an id it does not have (expired, deleted, never existed)."""
    return web.json_response(
        {
            "error": {
                "message": f"Unsupported get request. Object with ID '{media_id}' does not "
                "exist, cannot be loaded due to missing permissions, or does not support "
                "this operation.",
                "type": "GraphMethodException",
                "code": 100,
                "error_subcode": 33,
                "fbtrace_id": "mock",
            }
        },
        status=400,
    )


async def read_upload(request: web.Request) -> tuple[str, bytes]:
    """(mime type, bytes) of a multipart upload; ValueError when it is not one Graph takes."""
    if request.content_type != "multipart/form-data":
        raise ValueError("a multipart/form-data body is required")
    reader = await request.multipart()
    fields: dict[str, str] = {}
    data: bytes | None = None
    part_type = ""
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise ValueError("nested multipart")
        if part.name == "file":
            data = bytes(await part.read(decode=False))
            part_type = part.headers.get("Content-Type", "")
            if len(data) > MAX_UPLOAD_BYTES:
                raise ValueError("file too large")
        elif part.name:
            fields[part.name] = await part.text()
    if fields.get("messaging_product") != "whatsapp" or data is None:
        raise ValueError("messaging_product=whatsapp and a file are required")
    mime_type = fields.get("type") or part_type
    if not mime_type:
        raise ValueError("type is required")
    return mime_type, data


def describe(request: web.Request, medium: Medium, now: float) -> web.Response:
    """The medium's description, with a fresh download URL."""
    medium.url_key = secrets.token_urlsafe(16)
    medium.url_expires_at = now + URL_TTL_SECONDS
    url = (
        request.url.origin()
        .with_path("/whatsapp_business/attachments/")
        .with_query(mid=medium.id, ext=str(int(medium.url_expires_at)), hash=medium.url_key)
    )
    return web.json_response(
        {
            "messaging_product": "whatsapp",
            "url": str(url),
            "mime_type": medium.mime_type,
            "sha256": hashlib.sha256(medium.data).hexdigest(),
            "file_size": len(medium.data),
            "id": medium.id,
        }
    )


def download(request: web.Request, shelf: MediaShelf) -> web.Response:
    """The bytes a download URL names, while it and the medium are valid; 404 otherwise."""
    medium = shelf.live(request.query.get("mid", ""))
    if (
        medium is None
        or not medium.url_key
        or not hmac.compare_digest(request.query.get("hash", ""), medium.url_key)
        or medium.url_expires_at <= shelf.clock()
    ):
        return web.Response(status=404, text="Not Found")
    return web.Response(body=medium.data, content_type=_main_type(medium.mime_type))


def _main_type(mime_type: str) -> str:
    # aiohttp takes parameters (``; codecs=opus``) apart from the content type.
    return mime_type.split(";", 1)[0].strip() or "application/octet-stream"
