"""The api's queries: recording (each write idempotent by Meta's id or the send's key) and
reading the history by pages. Each method is one transaction.

Idempotency lives in unique keys, not in reads before writes: two replicas, or two deliveries
of one event handled at once, insert the same row, and the database keeps one. Statuses are
stored on their own, keyed by (wamid, status), and attached when the history is read, so a
status recorded before its message is never lost.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection
from typing import Any

from sqlalchemy import Table, and_, case, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hiker.api.cursors import ConversationCursor, MessageCursor
from hiker.api.db import keys
from hiker.api.db.delivery import join_by_callback_data
from hiker.api.db.engine import transaction
from hiker.api.db.identities import ids_of, message_row
from hiker.api.db.tables import conversations, messages, statuses, webhook_errors
from hiker.api.history import (
    ConversationRow,
    Inbound,
    KeyState,
    MessageRow,
    Outbound,
    Parked,
    Status,
    StatusAt,
    WebhookError,
)
from hiker.core.identity import is_bsuid

_Ids = tuple[str | None, str | None, str | None]


class RecordStore:
    """Records and history in the database behind ``engine`` (SQLite or PostgreSQL)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        dialect = engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {dialect!r}")
        # Both dialects' INSERT share ON CONFLICT and ``excluded``; the module differs.
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert

    def _transaction(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        return transaction(self._engine)

    async def ping(self) -> None:
        """Raises unless the database answers."""
        async with self._transaction() as connection:
            await connection.execute(select(literal(1)))

    async def add_inbound(self, message: Inbound) -> bool:
        """Record a user's message once (by wamid); False when it was already there."""
        async with self._transaction() as connection:
            return await self._add_message(
                connection,
                phone_number_id=message.phone_number_id,
                user=message.user,
                direction="in",
                type_=message.type,
                text=message.text,
                at_us=message.at_us,
                name=message.name,
                ids=(message.user_id, message.wa_id, message.username),
                wamid=message.wamid,
            )

    async def add_outbound(self, message: Outbound) -> bool:
        """Record a send once (by its key): a new row, or Graph's id on the row already there
        (accepted by the api, or parked and since replayed). False when nothing changed."""
        async with self._transaction() as connection:
            added = await self._add_message(
                connection,
                phone_number_id=message.phone_number_id,
                user=message.user,
                direction="out",
                type_=message.type,
                text=message.text,
                at_us=message.at_us,
                wamid=message.wamid,
                idempotency_key=message.idempotency_key,
                send_id=message.send_id,
                request_hash=message.request_hash,
                kind=message.kind,
            )
            if added:
                return True
            named = False
            if message.send_id is not None:
                # Graph's outcome was recorded before the request that asked for it.
                claimed = await connection.execute(
                    update(messages)
                    .where(messages.c.idempotency_key == message.idempotency_key)
                    .where(messages.c.send_id.is_(None))
                    .values(send_id=message.send_id, request_hash=message.request_hash)
                )
                named = bool(claimed.rowcount)
            if message.wamid is None:
                return named
            # The row's time stays as first written: it is the key cursors sort by.
            changed = await connection.execute(
                update(messages)
                .where(messages.c.idempotency_key == message.idempotency_key)
                .where(messages.c.wamid.is_(None))
                .values(
                    wamid=message.wamid,
                    parked=None,
                    type=message.type,
                    text=func.coalesce(messages.c.text, message.text),
                )
            )
            return named or bool(changed.rowcount)

    async def add_parked(self, send: Parked) -> bool:
        """Record that a send was parked (on its row, made when there is none yet), unless
        Graph has since accepted it. False when nothing changed."""
        async with self._transaction() as connection:
            added = await self._add_message(
                connection,
                phone_number_id=send.phone_number_id,
                user=send.user,
                direction="out",
                type_=send.type,
                text=send.text,
                at_us=send.at_us,
                idempotency_key=send.idempotency_key,
                kind=send.kind,
                parked=send.error,
            )
            if not added:
                changed = await connection.execute(
                    update(messages)
                    .where(messages.c.idempotency_key == send.idempotency_key)
                    .where(messages.c.wamid.is_(None))
                    .values(parked=send.error)
                )
                added = bool(changed.rowcount)
            # Parked in doubt, but a status already said the message left: it was sent.
            await join_by_callback_data(connection, send.idempotency_key)
            return added

    async def add_status(self, reported: Status) -> bool:
        """Record a status once per (wamid, status); its message may come later. A status
        naming its send's key names that send by Graph's id, if nothing did yet."""
        async with self._transaction() as connection:
            added = await self._insert_new(
                connection,
                statuses,
                wamid=reported.wamid,
                status=reported.status,
                at_us=reported.at_us,
                error=reported.error,
                callback_data=reported.callback_data,
            )
            if added and reported.callback_data is not None:
                await join_by_callback_data(connection, reported.callback_data)
            return added

    async def add_webhook_error(self, error: WebhookError) -> bool:
        async with self._transaction() as connection:
            return await self._insert_new(
                connection,
                webhook_errors,
                phone_number_id=error.phone_number_id,
                code=error.code,
                title=error.title,
                message=error.message,
                at_us=error.at_us,
            )

    async def claim_key(
        self,
        key: str,
        *,
        send_id: str,
        request_hash: str,
        holder: str,
        now_us: int,
        lease_until_us: int,
    ) -> KeyState | None:
        """Take an api send's key for ``holder`` (``db.keys.claim``); committed at once, so that
        a concurrent request sees it."""
        async with self._transaction() as connection:
            return await keys.claim(
                connection,
                self._insert,
                key=key,
                send_id=send_id,
                request_hash=request_hash,
                holder=holder,
                now_us=now_us,
                lease_until_us=lease_until_us,
            )

    async def release_key(self, key: str, holder: str) -> None:
        async with self._transaction() as connection:
            await keys.release(connection, key=key, holder=holder)

    async def finish_key(self, key: str, now_us: int) -> None:
        async with self._transaction() as connection:
            await keys.finish(connection, key=key, now_us=now_us)

    async def messages(
        self, phone_number_id: str, user: str, limit: int, after: MessageCursor | None
    ) -> list[MessageRow]:
        """A conversation's messages, latest first, from just past ``after``; statuses
        attached. ``user``: any id of theirs (``ids_of``)."""
        query = select(messages).where(messages.c.phone_number_id == phone_number_id)
        if after is not None:
            query = query.where(
                or_(
                    messages.c.at_us < after.at_us,
                    and_(messages.c.at_us == after.at_us, messages.c.id < after.id),
                )
            )
        query = query.order_by(messages.c.at_us.desc(), messages.c.id.desc()).limit(limit)
        async with self._transaction() as connection:
            users = await ids_of(connection, phone_number_id, user)
            query = query.where(messages.c.user.in_(sorted(users)))
            rows = (await connection.execute(query)).all()
            wamids = [row.wamid for row in rows if row.wamid and row.direction == "out"]
            reported: dict[str, list[StatusAt]] = {}
            if wamids:
                found = await connection.execute(
                    select(statuses)
                    .where(statuses.c.wamid.in_(wamids))
                    .order_by(statuses.c.at_us, statuses.c.id)
                )
                for entry in found:
                    reported.setdefault(entry.wamid, []).append(
                        StatusAt(entry.status, entry.at_us, entry.error)
                    )
        return [message_row(row, reported.get(row.wamid or "", ())) for row in rows]

    async def conversations(
        self,
        phone_number_id: str | None,
        limit: int,
        after: ConversationCursor | None,
        *,
        among: Collection[str] | None = None,
    ) -> list[ConversationRow]:
        """Conversations by their latest message first, from just past ``after``; of one
        number, and of ``among`` numbers only when given."""
        query = select(conversations)
        if phone_number_id is not None:
            query = query.where(conversations.c.phone_number_id == phone_number_id)
        if among is not None:
            query = query.where(conversations.c.phone_number_id.in_(sorted(among)))
        if after is not None:
            c = conversations.c
            query = query.where(
                or_(
                    c.last_at_us < after.at_us,
                    and_(
                        c.last_at_us == after.at_us,
                        or_(
                            c.phone_number_id < after.phone_number_id,
                            and_(c.phone_number_id == after.phone_number_id, c.user < after.user),
                        ),
                    ),
                )
            )
        query = query.order_by(
            conversations.c.last_at_us.desc(),
            conversations.c.phone_number_id.desc(),
            conversations.c.user.desc(),
        ).limit(limit)
        async with self._transaction() as connection:
            rows = (await connection.execute(query)).all()
        return [
            ConversationRow(
                phone_number_id=row.phone_number_id,
                user=row.user,
                name=row.name,
                last_at_us=row.last_at_us,
                last_direction=row.last_direction,
                last_type=row.last_type,
                last_text=row.last_text,
                message_count=row.message_count,
                user_id=row.user_id,
                wa_id=row.wa_id,
                username=row.username,
            )
            for row in rows
        ]

    async def _insert_new(
        self, connection: AsyncConnection, table: Table, **values: object
    ) -> bool:
        """Insert a row unless one with its unique key is there; whether it was inserted."""
        inserted = await connection.execute(
            self._insert(table).values(**values).on_conflict_do_nothing().returning(table.c.id)
        )
        return inserted.first() is not None

    async def _add_message(
        self,
        connection: AsyncConnection,
        *,
        phone_number_id: str,
        user: str,
        direction: str,
        type_: str,
        text: str | None,
        at_us: int,
        name: str | None = None,
        ids: _Ids = (None, None, None),
        **columns: object,
    ) -> bool:
        """Insert a message row (``columns``: the rest of it) unless its unique key is there,
        and count it in its conversation when it is new; whether it was inserted."""
        inserted = await self._insert_new(
            connection,
            messages,
            phone_number_id=phone_number_id,
            user=user,
            direction=direction,
            type=type_,
            text=text,
            at_us=at_us,
            **columns,
        )
        if inserted:
            await self._touch(
                connection, phone_number_id, user, direction, type_, text, at_us, name, ids
            )
        return inserted

    async def _touch(
        self,
        connection: AsyncConnection,
        phone_number_id: str,
        user: str,
        direction: str,
        type_: str,
        text: str | None,
        at_us: int,
        name: str | None = None,
        ids: _Ids = (None, None, None),
    ) -> None:
        """Count a new message in its conversation; it becomes the latest unless a later one
        was recorded first (records arrive in no guaranteed order). ``ids``: BSUID, phone
        number and username, as the message named them."""
        user_id, wa_id, username = ids
        statement = self._insert(conversations).values(
            phone_number_id=phone_number_id,
            user=user,
            name=name,
            user_id=user_id,
            wa_id=wa_id or (None if is_bsuid(user) else user),
            username=username,
            last_at_us=at_us,
            last_direction=direction,
            last_type=type_,
            last_text=text,
            message_count=1,
        )
        new = statement.excluded
        newer = new.last_at_us >= conversations.c.last_at_us

        def latest(column: str) -> Any:
            return case((newer, new[column]), else_=conversations.c[column])

        await connection.execute(
            statement.on_conflict_do_update(
                index_elements=[conversations.c.phone_number_id, conversations.c.user],
                set_={
                    "message_count": conversations.c.message_count + 1,
                    "name": func.coalesce(new.name, conversations.c.name),
                    "user_id": func.coalesce(new.user_id, conversations.c.user_id),
                    "wa_id": func.coalesce(new.wa_id, conversations.c.wa_id),
                    "username": func.coalesce(new.username, conversations.c.username),
                    "last_at_us": latest("last_at_us"),
                    "last_direction": latest("last_direction"),
                    "last_type": latest("last_type"),
                    "last_text": latest("last_text"),
                },
            )
        )
