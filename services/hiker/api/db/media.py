"""The api's records of the inbound media it kept: one row per Meta media id, the bytes in the
media store under their sha256 (``core.media``). Each method is one transaction."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from hiker.api.db.tables import media
from hiker.api.history import KeptMedium


class MediaRecords:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    async def add(self, kept: KeptMedium) -> None:
        """Record ``kept`` once (a redelivery writes nothing)."""
        statement = self._insert(media).values(**kept.__dict__).on_conflict_do_nothing()
        async with self._engine.begin() as connection:
            await connection.execute(statement)

    async def get(self, media_id: str) -> KeptMedium | None:
        async with self._engine.begin() as connection:
            row = (
                await connection.execute(select(media).where(media.c.media_id == media_id))
            ).first()
        return KeptMedium(**row._mapping) if row is not None else None

    async def of_messages(self, wamids: Collection[str]) -> dict[str, KeptMedium]:
        """The medium each of ``wamids`` carried, where one was kept."""
        if not wamids:
            return {}
        async with self._engine.begin() as connection:
            rows = await connection.execute(select(media).where(media.c.wamid.in_(list(wamids))))
            return {row.wamid: KeptMedium(**row._mapping) for row in rows}

    async def forget_before(self, before_us: int) -> list[str]:
        """Forget the media kept before ``before_us``; the digests no medium kept later shares
        (whose bytes may go from the store)."""
        async with self._engine.begin() as connection:
            old = await connection.execute(
                delete(media).where(media.c.stored_at_us < before_us).returning(media.c.sha256)
            )
            digests = {row.sha256 for row in old}
            if not digests:
                return []
            still = await connection.execute(
                select(media.c.sha256).where(media.c.sha256.in_(digests)).distinct()
            )
            return sorted(digests - {row.sha256 for row in still})
