"""Reading a user's messages: the same person named by a phone number, or a business-scoped user
id (BSUID), or both (``conversations.user_id`` / ``wa_id``, migration 0003), and each row as
the history's value."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Row, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from hiker.api.db.tables import conversations
from hiker.api.history import MessageRow, StatusAt


async def ids_of(connection: AsyncConnection, phone_number_id: str, user: str) -> set[str]:
    """``user`` and every other id of theirs that keys a conversation on the number: the
    conversation's key, its BSUID and its phone number (the history of a user keyed by phone
    number before Meta sent BSUIDs stays theirs)."""
    c = conversations.c
    found = await connection.execute(
        select(c.user, c.user_id, c.wa_id).where(
            c.phone_number_id == phone_number_id,
            or_(c.user == user, c.wa_id == user, c.user_id == user),
        )
    )
    ids = {user}
    for row in found:
        ids.update(i for i in (row.user, row.user_id, row.wa_id) if i)
    return ids


def message_row(row: Row[Any], reported: Sequence[StatusAt]) -> MessageRow:
    """A ``messages`` row, with the statuses Meta reported for it."""
    return MessageRow(
        id=row.id,
        phone_number_id=row.phone_number_id,
        user=row.user,
        direction=cast(Any, row.direction),
        wamid=row.wamid,
        send_id=row.send_id,
        kind=row.kind,
        type=row.type,
        text=row.text,
        at_us=row.at_us,
        parked=row.parked,
        statuses=tuple(reported),
    )
