"""One scheduler tick in SQL: which recipients go to the sender now.

A tick runs in one transaction. On PostgreSQL it first takes a transaction-scoped advisory
lock without waiting: of several api replicas one feeds at a time and the others skip the tick,
so no recipient is handed twice by two replicas and the rates hold whoever feeds. It then takes,
for each running broadcast, up to what its number's share of the rate allows since the last
tick (kept in the database, so replicas taking turns keep one pace) and what the rolling
24-hour messaging limit leaves, skips who opted out, publishes the rest and marks them
``sending``. Should the commit fail after the publish, the next tick publishes them again:
their send ids are the same, and the sender sends each once.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hiker.api.broadcasting import command_for
from hiker.api.db.broadcast_tables import broadcast_pacing as pacing
from hiker.api.db.broadcast_tables import broadcast_reach as reach
from hiker.api.db.broadcast_tables import broadcast_recipients as recipients
from hiker.api.db.broadcast_tables import broadcasts, opt_outs
from hiker.api.db.broadcasts import transaction
from hiker.api.history import to_us
from hiker.core.contracts import SendMessage

# The advisory lock a tick holds (any constant the replicas share; not the migrations' one).
_FEED_LOCK: Final = 0x68696B6562  # "hikeb"
WINDOW_SECONDS: Final = 24 * 3600
# How long a recipient handed to the sender counts as in flight without Graph's answer.
IN_FLIGHT_SECONDS: Final = 60

Publish = Callable[[Sequence[SendMessage]], Awaitable[None]]
# The portfolio's messaging limit (unique users per rolling 24 hours), given the numbers of the
# running broadcasts (all of one portfolio: any of them can tell); None: no limit.
MessagingLimit = Callable[[Sequence[str]], Awaitable[int | None]]


@dataclass(frozen=True)
class Limits:
    # Sends per second a broadcast's number may take (its rate times the share).
    rate_per_second: float
    # Unused allowance kept at most this long: a stalled scheduler does not burst after.
    burst_seconds: float
    messaging_limit: MessagingLimit
    # Recipients of a number handed to the sender and not yet answered by Graph, at most: what
    # a reply on the number may find queued ahead of it at the sender, whatever its speed.
    max_in_flight: int


@dataclass
class Fed:
    """What a tick did."""

    handed: int = 0
    skipped: int = 0
    finished: list[str] = field(default_factory=list)
    # True when the rolling limit held recipients back.
    held_by_limit: bool = False
    # False when another replica held the tick.
    ran: bool = True


class Feeder:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self._insert = postgresql.insert if self._postgres else sqlite.insert

    async def tick(self, now: float, limits: Limits, publish: Publish) -> Fed:
        fed = Fed()
        now_us = to_us(now)
        async with transaction(self._engine) as connection:
            if self._postgres and not await connection.scalar(
                text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _FEED_LOCK}
            ):
                fed.ran = False
                return fed
            running = (
                await connection.execute(
                    select(broadcasts.c.id, broadcasts.c.phone_number_id)
                    .where(broadcasts.c.state == "running")
                    .where(broadcasts.c.start_at_us <= now_us)
                    .order_by(broadcasts.c.created_at_us, broadcasts.c.id)
                )
            ).all()
            if not running:
                return fed
            numbers = tuple(dict.fromkeys(number for _, number in running))
            reach = await self._reach_left(
                connection, now_us, await limits.messaging_limit(numbers)
            )
            allowance: dict[str, float] = {}
            for _, number in running:
                if number not in allowance:
                    allowance[number] = await self._fed_until(connection, number, now, limits)
            used: dict[str, int] = {}
            in_flight = await self._in_flight(connection, running, now_us)
            for broadcast_id, number in running:
                room = math.floor((now - allowance[number]) * limits.rate_per_second)
                room -= used.get(number, 0)
                room = min(room, limits.max_in_flight - in_flight.get(number, 0))
                if reach is not None:
                    if reach <= 0:
                        fed.held_by_limit = True
                        break
                    room = min(room, reach)
                if room <= 0:
                    continue
                handed = await self._feed_one(
                    connection, broadcast_id, number, room, now_us, publish, fed
                )
                used[number] = used.get(number, 0) + handed
                in_flight[number] = in_flight.get(number, 0) + handed
                if reach is not None:
                    reach -= handed
            if sum(used.values()):
                await self._add_reach(connection, now_us, sum(used.values()))
            for number, count in used.items():
                await self._set_fed_until(
                    connection, number, allowance[number] + count / limits.rate_per_second
                )
        return fed

    async def _feed_one(
        self,
        connection: AsyncConnection,
        broadcast_id: str,
        number: str,
        room: int,
        now_us: int,
        publish: Publish,
        fed: Fed,
    ) -> int:
        picking = (
            select(recipients.c.seq, recipients.c.to, recipients.c.parameters)
            .where(recipients.c.broadcast_id == broadcast_id)
            .where(recipients.c.status == "queued")
            .order_by(recipients.c.seq)
            .limit(room)
        )
        picked = (await connection.execute(picking)).all()
        if len(picked) < room:
            # Every recipient is handed (or skipped) with this tick: the broadcast is done
            # feeding; its outcomes keep coming.
            await connection.execute(
                update(broadcasts)
                .where(broadcasts.c.id == broadcast_id)
                .where(broadcasts.c.state == "running")
                .values(state="done")
            )
            fed.finished.append(broadcast_id)
        if not picked:
            return 0
        opted = set(
            (
                await connection.execute(
                    select(opt_outs.c.user)
                    .where(opt_outs.c.phone_number_id == number)
                    .where(opt_outs.c.user.in_([row.to for row in picked]))
                )
            ).scalars()
        )
        skipped = [row.seq for row in picked if row.to in opted]
        going = [row for row in picked if row.to not in opted]
        if skipped:
            await self._mark(connection, broadcast_id, skipped, status="skipped")
            fed.skipped += len(skipped)
        if not going:
            return 0
        template, kind = (
            await connection.execute(
                select(broadcasts.c.template, broadcasts.c.kind).where(
                    broadcasts.c.id == broadcast_id
                )
            )
        ).one()
        await publish(
            [
                command_for(
                    broadcast_id=broadcast_id,
                    seq=row.seq,
                    phone_number_id=number,
                    to=row.to,
                    template=template,
                    parameters=orjson.loads(row.parameters) if row.parameters else (),
                    kind=kind,
                )
                for row in going
            ]
        )
        await self._mark(
            connection,
            broadcast_id,
            [row.seq for row in going],
            status="sending",
            published_at_us=now_us,
        )
        fed.handed += len(going)
        return len(going)

    async def _mark(
        self, connection: AsyncConnection, broadcast_id: str, seqs: list[int], **values: Any
    ) -> None:
        await connection.execute(
            update(recipients)
            .where(recipients.c.broadcast_id == broadcast_id)
            .where(recipients.c.seq.in_(seqs))
            .where(recipients.c.status == "queued")
            .values(**values)
        )

    async def _in_flight(
        self, connection: AsyncConnection, running: Sequence[Any], now_us: int
    ) -> dict[str, int]:
        """Recipients each number handed to the sender that Graph has not answered (as far as
        the records say). One handed long ago and never answered (a sender that died between
        Graph's answer and telling it) stops counting after ``IN_FLIGHT_SECONDS``."""
        numbers: dict[str, str] = dict(running)
        counted = await connection.execute(
            select(recipients.c.broadcast_id, func.count())
            .where(recipients.c.broadcast_id.in_(list(numbers)))
            .where(recipients.c.status == "sending")
            .where(recipients.c.published_at_us > now_us - IN_FLIGHT_SECONDS * 1_000_000)
            .group_by(recipients.c.broadcast_id)
        )
        in_flight: dict[str, int] = {}
        for broadcast_id, count in counted:
            number = numbers[broadcast_id]
            in_flight[number] = in_flight.get(number, 0) + int(count)
        return in_flight

    async def _reach_left(
        self, connection: AsyncConnection, now_us: int, limit: int | None
    ) -> int | None:
        """Users the rolling 24 hours still allow. On the safe side: every recipient handed
        counts as a new user (even one reached earlier in the window), and a minute counts
        until all of it left the window."""
        if limit is None:
            return None
        oldest = (now_us // 1_000_000 - WINDOW_SECONDS) // 60
        reached = await connection.scalar(
            select(func.coalesce(func.sum(reach.c.users), 0)).where(reach.c.minute >= oldest)
        )
        return limit - int(reached or 0)

    async def _add_reach(self, connection: AsyncConnection, now_us: int, users: int) -> None:
        minute = now_us // 60_000_000
        statement = self._insert(reach).values(minute=minute, users=users)
        await connection.execute(
            statement.on_conflict_do_update(
                index_elements=[reach.c.minute],
                set_={"users": reach.c.users + statement.excluded.users},
            )
        )
        # Minutes long out of the window: a day's worth stays, the rest goes.
        await connection.execute(
            delete(reach).where(reach.c.minute < minute - 2 * WINDOW_SECONDS // 60)
        )

    async def _fed_until(
        self, connection: AsyncConnection, number: str, now: float, limits: Limits
    ) -> float:
        """Up to when the number's allowance is used (never further back than the burst)."""
        query = select(pacing.c.fed_until).where(pacing.c.phone_number_id == number)
        stored = await connection.scalar(query)
        floor = now - limits.burst_seconds
        # A clock that went back (a test's, or NTP's step) must not stall the number.
        return floor if stored is None or stored < floor or stored > now + 1 else float(stored)

    async def _set_fed_until(
        self, connection: AsyncConnection, number: str, fed_until: float
    ) -> None:
        statement = self._insert(pacing).values(phone_number_id=number, fed_until=fed_until)
        await connection.execute(
            statement.on_conflict_do_update(
                index_elements=[pacing.c.phone_number_id],
                set_={"fed_until": statement.excluded.fed_until},
            )
        )
