"""Users who opted out of broadcasts, per number: recorded once (the first time they asked),
listed by pages, cleared by the api."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from hiker.api.db.broadcast_tables import opt_outs
from hiker.api.db.broadcasts import transaction


@dataclass(frozen=True)
class OptOutRow:
    phone_number_id: str
    user: str
    word: str
    at_us: int


class OptOutStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        postgres = engine.dialect.name == "postgresql"
        self._insert = postgresql.insert if postgres else sqlite.insert

    async def add(self, phone_number_id: str, users: Iterable[str], word: str, at_us: int) -> bool:
        """Record each of ``users`` (a user's ids: the BSUID, the phone number) as opted out;
        False when all were already (the time of the first opt-out is kept)."""
        rows = [
            {"phone_number_id": phone_number_id, "user": user, "word": word[:64], "at_us": at_us}
            for user in dict.fromkeys(users)
        ]
        if not rows:
            return False
        async with transaction(self._engine) as connection:
            done = await connection.execute(
                self._insert(opt_outs).values(rows).on_conflict_do_nothing()
            )
            return bool(done.rowcount)

    async def page(
        self, phone_number_id: str | None, limit: int, after: tuple[str, str] | None
    ) -> list[OptOutRow]:
        """Opt-outs ordered by (number, user), after ``after``."""
        query = select(opt_outs)
        if phone_number_id is not None:
            query = query.where(opt_outs.c.phone_number_id == phone_number_id)
        if after is not None:
            query = query.where(tuple_(opt_outs.c.phone_number_id, opt_outs.c.user) > after)
        query = query.order_by(opt_outs.c.phone_number_id, opt_outs.c.user).limit(limit)
        async with transaction(self._engine) as connection:
            rows = await connection.execute(query)
            return [OptOutRow(r.phone_number_id, r.user, r.word, r.at_us) for r in rows]

    async def clear(self, phone_number_id: str, user: str) -> bool:
        """The user gets broadcasts again; False when they had not opted out."""
        async with transaction(self._engine) as connection:
            done = await connection.execute(
                delete(opt_outs)
                .where(opt_outs.c.phone_number_id == phone_number_id)
                .where(opt_outs.c.user == user)
            )
            return bool(done.rowcount)
