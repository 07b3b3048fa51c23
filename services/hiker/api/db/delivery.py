"""The api's records of what became of sends beyond their statuses: what Meta charges for each
message, and each message template as Meta's template webhooks last described it; and the join
of a status to its send by the send's key. Each method is one transaction.

Idempotent by unique keys, as the rest of the records: a price once per message (the first
status that carried one), a template's status, quality or category only by a change at least
as new as the one kept (webhooks may arrive in any order).
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hiker.api.db.engine import transaction
from hiker.api.db.tables import message_prices, messages, statuses, templates
from hiker.api.history import Price
from hiker.api.templates import TemplateChange, TemplateRow


class DeliveryRecords:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    async def add_price(self, price: Price) -> bool:
        """Record what Meta charges for ``price.wamid``, once; False when it was known."""
        statement = (
            self._insert(message_prices)
            .values(**price.__dict__)
            .on_conflict_do_nothing()
            .returning(message_prices.c.wamid)
        )
        async with transaction(self._engine) as connection:
            return (await connection.execute(statement)).first() is not None

    async def prices_of(self, wamids: Collection[str]) -> dict[str, Price]:
        if not wamids:
            return {}
        query = select(message_prices).where(message_prices.c.wamid.in_(sorted(wamids)))
        async with transaction(self._engine) as connection:
            return {row.wamid: Price(**row._mapping) for row in await connection.execute(query)}

    async def add_template(self, change: TemplateChange) -> bool:
        """Apply ``change`` unless a newer one of the same aspect was recorded first."""
        aspect, at = change.aspect, f"{change.aspect}_at_us"
        values: dict[str, object] = {
            "template_id": change.template_id,
            "waba_id": change.waba_id,
            "name": change.name,
            "language": change.language,
            aspect: change.value,
            at: change.at_us,
            "updated_at_us": change.recorded_at_us,
        }
        if aspect == "status":
            values["reason"] = change.reason
        insert = self._insert(templates).values(**values)
        new = insert.excluded
        kept_at = templates.c[at]
        statement = insert.on_conflict_do_update(
            index_elements=[templates.c.template_id],
            set_={name: new[name] for name in values if name != "template_id"},
            where=or_(kept_at.is_(None), kept_at <= new[at]),
        ).returning(templates.c.template_id)
        async with transaction(self._engine) as connection:
            return (await connection.execute(statement)).first() is not None

    async def all_templates(self) -> list[TemplateRow]:
        """Every template (a business account has hundreds at most)."""
        async with transaction(self._engine) as connection:
            found = await connection.execute(select(templates).order_by(templates.c.template_id))
            return [TemplateRow(**row._mapping) for row in found]

    async def templates(
        self, limit: int, after: str | None = None, status: str | None = None
    ) -> list[TemplateRow]:
        """Templates by id, from just past ``after``; of one status when given."""
        query = select(templates).order_by(templates.c.template_id).limit(limit)
        if after is not None:
            query = query.where(templates.c.template_id > after)
        if status is not None:
            query = query.where(templates.c.status == status)
        async with transaction(self._engine) as connection:
            return [TemplateRow(**row._mapping) for row in await connection.execute(query)]


async def join_by_callback_data(connection: AsyncConnection, key: str) -> bool:
    """Name the send recorded under ``key`` by the Graph id a status reported for it, when the
    send's row has none yet: Graph's answer is not recorded yet (or never will be, when the
    sender died during the call and parked the send in doubt). A status proves the message
    left: a park of it no longer stands. Whether a row changed."""
    reported = (
        select(statuses.c.wamid)
        .where(statuses.c.callback_data == key)
        .order_by(statuses.c.id)
        .limit(1)
        .scalar_subquery()
    )
    taken = exists().where(messages.c.wamid == reported)
    changed = await connection.execute(
        update(messages)
        .where(
            and_(
                messages.c.idempotency_key == key,
                messages.c.direction == "out",
                messages.c.wamid.is_(None),
                reported.is_not(None),
                ~taken,
            )
        )
        .values(wamid=reported, parked=None)
    )
    return bool(changed.rowcount)
