"""``InMemoryMedia``: the media a test's user sent, downloadable without Graph or a network.

It answers a view's ``download()`` as ``core.graph_media.GraphMedia`` does: the bytes checked
against the digest the message announced, kept once in a media store (in memory), and the same
errors: ``MediaExpired`` for an id it does not have or that ``expire`` ended, ``MediaTooLarge``
past ``max_bytes``.
"""

from __future__ import annotations

import hashlib

from hiker.core.media import MediaExpired, MediaMismatch, MediaStore, MediaTooLarge, hex_digest


class InMemoryMedia:
    """Media by id, as a user's phone uploaded them to Meta."""

    def __init__(self, *, max_bytes: int = 16 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.store = MediaStore.from_url("memory://")
        self._media: dict[str, bytes] = {}
        # False: every medium is gone, those sent later too (a bot reading a message late).
        self.available = True

    def add(self, media_id: str, data: bytes) -> None:
        self._media[media_id] = data

    def expire(self, media_id: str) -> None:
        """``media_id`` is gone, as Meta's media are after a while."""
        self._media.pop(media_id, None)

    async def fetch(self, phone_number_id: str, media_id: str, sha256: str | None) -> bytes:
        data = self._media.get(media_id) if self.available else None
        if data is None:
            raise MediaExpired(f"media {media_id}: Graph no longer has it (expired)")
        if len(data) > self.max_bytes:
            raise MediaTooLarge(
                f"media {media_id} has {len(data)} bytes, over HIKER_MEDIA_MAX_BYTES "
                f"({self.max_bytes})"
            )
        announced = hex_digest(sha256)
        if announced is not None and announced != hashlib.sha256(data).hexdigest():
            raise MediaMismatch(f"media {media_id}: the bytes do not have the announced sha256")
        await self.store.put(data)
        return data
