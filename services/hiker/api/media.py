"""Inbound media in the api: kept as they are recorded, served by ``GET /v1/media/{id}``, and
forgotten after ``HIKER_MEDIA_RETENTION_DAYS``.

With ``HIKER_MEDIA_STORE`` set, the recorder downloads each inbound medium through Graph
(``core.graph_media``) into the store and records it (``db.media``), so the history keeps it
after Meta's id expired. A medium that cannot be had (expired, too large, Graph failing) is
logged and the message recorded without it: recording never waits on Meta's media.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable

from aiohttp import web

from hiker.api.auth import check_number
from hiker.api.db.media import MediaRecords
from hiker.api.history import KeptMedium
from hiker.core.contracts import MessageReceived
from hiker.core.graph_media import GraphMedia
from hiker.core.media import MediaError

log = logging.getLogger(__name__)

MEDIA_KINDS = frozenset({"image", "video", "audio", "document", "sticker"})
# How often retention looks for media past their time.
RETENTION_SWEEP_SECONDS = 3600.0


class MediaKeeper:
    """Keeps inbound media: the recorder's hook, the route's source, the retention sweep."""

    def __init__(
        self,
        source: GraphMedia,
        records: MediaRecords,
        *,
        retention_days: float | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.records = records
        self.retention_days = retention_days
        self._clock = clock

    async def keep(self, event: MessageReceived) -> None:
        """Download and record the medium ``event`` carries, if any."""
        if event.message_type not in MEDIA_KINDS:
            return
        part = event.raw.get(event.message_type)
        if not isinstance(part, dict):
            return
        media_id = part.get("id")
        if not isinstance(media_id, str) or not media_id:
            return
        announced = part.get("sha256") if isinstance(part.get("sha256"), str) else None
        try:
            data = await self.source.fetch(event.phone_number_id, media_id, announced)
        except MediaError as exc:
            log.warning("inbound media not kept: %s", exc, extra={"wamid": event.wamid})
            return
        except Exception as exc:  # the media store away: the message is recorded all the same
            log.warning(
                "inbound media not kept: the media store failed (%s)",
                type(exc).__name__,
                extra={"wamid": event.wamid},
            )
            return
        mime_type = part.get("mime_type")
        await self.records.add(
            KeptMedium(
                media_id=media_id,
                wamid=event.wamid,
                phone_number_id=event.phone_number_id,
                sha256=hashlib.sha256(data).hexdigest(),
                mime_type=mime_type if isinstance(mime_type, str) else None,
                size=len(data),
                stored_at_us=int(self._clock() * 1_000_000),
            )
        )

    async def sweep(self) -> int:
        """Forget what is past retention, and the bytes nothing kept later shares."""
        if self.retention_days is None:
            return 0
        before_us = int((self._clock() - self.retention_days * 86400) * 1_000_000)
        digests = await self.records.forget_before(before_us)
        for digest in digests:
            await self.source.store.delete(digest)
        if digests:
            log.info("media past retention deleted", extra={"count": len(digests)})
        return len(digests)

    async def sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:  # the database or store away: the next sweep catches up
                log.warning("media retention sweep failed; next in an hour", exc_info=True)
            await asyncio.sleep(RETENTION_SWEEP_SECONDS)


KEEPER = web.AppKey("api_media_keeper", MediaKeeper)


async def get_media(request: web.Request) -> web.Response:
    """The bytes of a kept medium, with its type; 404 when none is kept under that id."""
    keeper = request.app.get(KEEPER)
    media_id = request.match_info["media_id"]
    kept = (
        await keeper.records.get(media_id) if keeper is not None and len(media_id) <= 128 else None
    )
    if kept is None or keeper is None:
        raise web.HTTPNotFound(reason="no medium is kept under this id")
    check_number(request, kept.phone_number_id, "media_id")
    data = await keeper.source.store.get(kept.sha256)
    if data is None:
        raise web.HTTPNotFound(reason="this medium's bytes are no longer in the media store")
    content_type = (kept.mime_type or "application/octet-stream").split(";", 1)[0].strip()
    return web.Response(body=data, content_type=content_type)
