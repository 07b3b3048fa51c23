"""Broadcasts in SQL: writing one with its recipients in bulk (PostgreSQL's COPY), its counts,
its state, its recipients by pages, and the outcomes of its sends as they come back.

What the scheduler does each tick is in ``db.feeding``; the opt-outs in ``db.opt_outs``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hiker.api.broadcasting import BroadcastRequest, Recipient
from hiker.api.db.broadcast_tables import broadcast_recipients as recipients
from hiker.api.db.broadcast_tables import broadcasts
from hiker.core.errors import DatabaseUnavailable

# Rows a SQLite INSERT is given at once (PostgreSQL takes them all through COPY).
_SQLITE_CHUNK: Final = 5_000
_COLUMNS: Final = ("broadcast_id", "seq", "to", "parameters", "status")

# Which statuses each outcome may follow: a send's statuses may arrive in any order (a status
# before Graph's answer was recorded, a late "sent" after "delivered"), and a recipient only
# moves forward. "failed" follows any but "read": Meta's last word on a send is its outcome.
_BEFORE: Final[dict[str, tuple[str, ...]]] = {
    "accepted": ("queued", "sending"),
    "sent": ("queued", "sending", "accepted"),
    "delivered": ("queued", "sending", "accepted", "sent"),
    "read": ("queued", "sending", "accepted", "sent", "delivered", "failed"),
    "failed": ("queued", "sending", "accepted", "sent", "delivered"),
    "parked": ("queued", "sending"),
}
OUTCOMES: Final = frozenset(_BEFORE)


class KeyReused(Exception):
    """The Idempotency-Key named another broadcast before."""


@dataclass(frozen=True)
class BroadcastRow:
    id: str
    phone_number_id: str
    name: str
    template: dict[str, Any]
    kind: str
    state: str
    start_at_us: int
    created_at_us: int
    total: int
    # Recipients by status; failed and parked ones also by Meta's code.
    counts: dict[str, int] = field(default_factory=dict)
    failed_by_code: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RecipientRow:
    seq: int
    to: str
    status: str
    error_code: int | None


@dataclass(frozen=True)
class NewBroadcast:
    id: str
    idempotency_key: str
    request_hash: str
    request: BroadcastRequest
    kind: str
    start_at_us: int
    created_at_us: int


@contextlib.asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    try:
        async with engine.begin() as connection:
            yield connection
    except (OSError, TimeoutError) as exc:
        # The driver's socket failed before it could wrap the error: the database is away.
        raise DatabaseUnavailable(type(exc).__name__) from exc


class BroadcastStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self._insert = postgresql.insert if self._postgres else sqlite.insert

    async def create(self, new: NewBroadcast) -> bool:
        """Write the broadcast and its recipients in one transaction; False when its key was
        there already with the same request (nothing written), KeyReused with another."""
        request = new.request
        async with transaction(self._engine) as connection:
            inserted = await connection.execute(
                self._insert(broadcasts)
                .values(
                    id=new.id,
                    idempotency_key=new.idempotency_key,
                    request_hash=new.request_hash,
                    phone_number_id=request.phone_number_id,
                    name=request.name,
                    template=request.template.model_dump(
                        mode="json", exclude={"type", "reply_to", "quote"}, exclude_defaults=True
                    ),
                    kind=new.kind,
                    state="running",
                    start_at_us=new.start_at_us,
                    created_at_us=new.created_at_us,
                    total=len(request.recipients),
                )
                # Two requests racing with one key: the second waits for the first's commit,
                # then writes nothing and reads what the first wrote.
                .on_conflict_do_nothing(index_elements=[broadcasts.c.idempotency_key])
                .returning(broadcasts.c.id)
            )
            if inserted.first() is None:
                known = await connection.scalar(
                    select(broadcasts.c.request_hash).where(
                        broadcasts.c.idempotency_key == new.idempotency_key
                    )
                )
                if known != new.request_hash:
                    raise KeyReused()
                return False
            await self._add_recipients(connection, new.id, request.recipients)
            return True

    async def _add_recipients(
        self, connection: AsyncConnection, broadcast_id: str, users: Sequence[Recipient]
    ) -> None:
        rows = (
            (
                broadcast_id,
                seq,
                user.to,
                orjson.dumps(user.parameters).decode() if user.parameters else None,
                "queued",
            )
            for seq, user in enumerate(users)
        )
        if self._postgres:
            # COPY: 100,000 rows in a fraction of a second, in this same transaction.
            raw = await connection.get_raw_connection()
            driver: Any = raw.driver_connection
            await driver.copy_records_to_table(
                recipients.name, records=list(rows), columns=list(_COLUMNS)
            )
            return
        batch: list[dict[str, Any]] = []
        for row in rows:
            batch.append(dict(zip(_COLUMNS, row, strict=True)))
            if len(batch) >= _SQLITE_CHUNK:
                await connection.execute(recipients.insert(), batch)
                batch = []
        if batch:
            await connection.execute(recipients.insert(), batch)

    async def get(self, broadcast_id: str) -> BroadcastRow | None:
        async with transaction(self._engine) as connection:
            row = (
                await connection.execute(select(broadcasts).where(broadcasts.c.id == broadcast_id))
            ).first()
            if row is None:
                return None
            counted = await connection.execute(
                select(recipients.c.status, recipients.c.error_code, func.count())
                .where(recipients.c.broadcast_id == broadcast_id)
                .group_by(recipients.c.status, recipients.c.error_code)
            )
            counts: dict[str, int] = {}
            by_code: dict[str, int] = {}
            for status, code, n in counted:
                counts[status] = counts.get(status, 0) + n
                if status == "failed":
                    label = str(code) if code is not None else "unknown"
                    by_code[label] = by_code.get(label, 0) + n
        return BroadcastRow(
            id=row.id,
            phone_number_id=row.phone_number_id,
            name=row.name,
            template=row.template,
            kind=row.kind,
            state=row.state,
            start_at_us=row.start_at_us,
            created_at_us=row.created_at_us,
            total=row.total,
            counts=counts,
            failed_by_code=by_code,
        )

    async def change_state(
        self, broadcast_id: str, *, from_states: Collection[str], to_state: str
    ) -> str | None:
        """Move the broadcast to ``to_state`` when it is in one of ``from_states``; its state
        afterwards (unchanged when it was in none of them), None when there is no such one."""
        async with transaction(self._engine) as connection:
            # FOR UPDATE (PostgreSQL): a cancel waits for a scheduler tick feeding it to end.
            query = select(broadcasts.c.state).where(broadcasts.c.id == broadcast_id)
            state = await connection.scalar(query.with_for_update() if self._postgres else query)
            if state is None or state not in from_states or state == to_state:
                return state
            await connection.execute(
                update(broadcasts).where(broadcasts.c.id == broadcast_id).values(state=to_state)
            )
            if to_state == "cancelled":
                await connection.execute(
                    update(recipients)
                    .where(recipients.c.broadcast_id == broadcast_id)
                    .where(recipients.c.status == "queued")
                    .values(status="cancelled")
                )
            return to_state

    async def recipients(
        self, broadcast_id: str, status: str | None, limit: int, after_seq: int | None
    ) -> list[RecipientRow]:
        query = select(
            recipients.c.seq, recipients.c.to, recipients.c.status, recipients.c.error_code
        ).where(recipients.c.broadcast_id == broadcast_id)
        if status is not None:
            query = query.where(recipients.c.status == status)
        if after_seq is not None:
            query = query.where(recipients.c.seq > after_seq)
        async with transaction(self._engine) as connection:
            rows = await connection.execute(query.order_by(recipients.c.seq).limit(limit))
            return [RecipientRow(r.seq, r.to, r.status, r.error_code) for r in rows]

    async def advance(
        self, broadcast_id: str, seq: int, outcome: str, error_code: int | None = None
    ) -> bool:
        """Record a send's outcome (``OUTCOMES``) when it moves the recipient forward; False
        when it does not (a repeat, or an older status arriving late)."""
        values: dict[str, Any] = {"status": outcome}
        if outcome in ("failed", "parked"):
            values["error_code"] = error_code
        async with transaction(self._engine) as connection:
            done = await connection.execute(
                update(recipients)
                .where(
                    and_(
                        recipients.c.broadcast_id == broadcast_id,
                        recipients.c.seq == seq,
                        recipients.c.status.in_(_BEFORE[outcome]),
                    )
                )
                .values(**values)
            )
            return bool(done.rowcount)
