"""The idempotency keys of ``POST /v1/messages`` in SQL: taking a key, or taking over one whose
lease ran out, in one statement; giving it back when the publish failed; finishing it once the
broker confirmed. Each runs in the caller's transaction (``RecordStore``), on SQLite and
PostgreSQL alike (both have ``INSERT ... ON CONFLICT DO UPDATE ... WHERE ... RETURNING``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from hiker.api.db.tables import idempotency_keys as keys
from hiker.api.history import KeyState


async def claim(
    connection: AsyncConnection,
    insert: Any,
    *,
    key: str,
    send_id: str,
    request_hash: str,
    holder: str,
    now_us: int,
    lease_until_us: int,
) -> KeyState | None:
    """Take ``key`` for ``holder``: a new key, or one left unpublished past its lease by a
    request for the same thing. Either way the key's state afterwards (``holder`` says whether
    it is ours); None only if the row vanished in between."""
    statement = insert(keys).values(
        idempotency_key=key,
        send_id=send_id,
        request_hash=request_hash,
        holder=holder,
        lease_until_us=lease_until_us,
        attempts=1,
        created_at_us=now_us,
        published_at_us=None,
    )
    new = statement.excluded
    # One statement: two requests racing for the key are ordered by the key's unique index,
    # never by a read that both make before either writes.
    taken = await connection.execute(
        statement.on_conflict_do_update(
            index_elements=[keys.c.idempotency_key],
            set_={
                "holder": new.holder,
                "lease_until_us": new.lease_until_us,
                "attempts": keys.c.attempts + 1,
            },
            where=and_(
                keys.c.published_at_us.is_(None),
                keys.c.lease_until_us <= now_us,
                keys.c.request_hash == new.request_hash,
            ),
        ).returning(*keys.c)
    )
    row = taken.first()
    if row is None:
        row = (await connection.execute(select(keys).where(keys.c.idempotency_key == key))).first()
    if row is None:
        return None
    return KeyState(
        send_id=row.send_id,
        request_hash=row.request_hash,
        holder=row.holder,
        lease_until_us=row.lease_until_us,
        attempts=row.attempts,
        published=row.published_at_us is not None,
    )


async def release(connection: AsyncConnection, *, key: str, holder: str) -> None:
    """End ``holder``'s lease at once (its publish failed): a retry need not wait for it."""
    await connection.execute(
        update(keys)
        .where(keys.c.idempotency_key == key)
        .where(keys.c.holder == holder)
        .where(keys.c.published_at_us.is_(None))
        .values(lease_until_us=0)
    )


async def finish(connection: AsyncConnection, *, key: str, now_us: int) -> None:
    """Mark ``key`` published: from now on a repeat is answered without a publish. Whoever
    holds it: a request that took over a slow one's key publishes the same command."""
    await connection.execute(
        update(keys)
        .where(keys.c.idempotency_key == key)
        .where(keys.c.published_at_us.is_(None))
        .values(published_at_us=now_us)
    )
