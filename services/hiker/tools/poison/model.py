"""A message held in ``hiker.poison`` or ``hiker.inspect``, as an operator sees it."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from aio_pika.abc import AbstractIncomingMessage

from hiker.core import topology
from hiker.core.bundles import BUNDLE_HEADER
from hiker.core.headers import header_epoch_seconds, header_text
from hiker.core.observability import mask_phone, mask_text
from hiker.tools.heldqueue import Address, Copy

# Headers the broker writes when it dead-letters or redelivers a message: they describe the
# deaths of the copy being removed, and the replayed copy starts afresh.
_BROKER_HEADERS: Final = frozenset(
    {"x-death", "x-delivery-count", "x-first-death-exchange", "x-first-death-queue"}
    | {"x-first-death-reason", "x-last-death-exchange", "x-last-death-queue"}
    | {"x-last-death-reason"}
)
# The item fields that identify a contract (wamid, idempotency key, a status's message id) and
# the ones that name a user (masked when shown). No other field of a body is ever shown.
_ID_FIELDS: Final = ("wamid", "idempotency_key", "message_id")
_USER_FIELDS: Final = ("user", "to", "recipient_id", "wa_id")
# Exchanges an inspected message may be re-published to: those ``hiker.inspect`` is bound to.
INSPECT_EXCHANGES: Final = frozenset(exchange for exchange, _ in topology.INSPECT.bindings)


@dataclass(frozen=True)
class Death:
    """The latest entry of ``x-death``: where the message died, why, how often, since when."""

    queue: str
    reason: str
    count: int
    first_time: datetime | None

    @classmethod
    def latest(cls, headers: Mapping[str, Any]) -> Death | None:
        deaths = headers.get("x-death")
        if not isinstance(deaths, Sequence) or not deaths or not isinstance(deaths[0], Mapping):
            return None
        # RabbitMQ keeps the most recent death first.
        entry = deaths[0]
        count = entry.get("count")
        when = entry.get("time")
        return cls(
            queue=header_text(entry.get("queue")) or "",
            reason=header_text(entry.get("reason")) or "unknown",
            count=count if type(count) is int else 1,
            first_time=when if isinstance(when, datetime) else None,
        )


@dataclass(frozen=True)
class Item:
    """One contract of a body: its id and its user, both masked for showing."""

    id: str | None
    user: str | None

    @classmethod
    def of(cls, fields: Mapping[str, Any]) -> Item:
        return cls(_first(fields, _ID_FIELDS), _first(fields, _USER_FIELDS))

    def shown(self) -> dict[str, str | None]:
        return {
            "id": mask_text(self.id) if self.id is not None else None,
            "user": mask_phone(self.user) if self.user is not None else None,
        }


@dataclass(frozen=True)
class HeldMessage:
    """A message in ``hiker.poison`` or ``hiker.inspect``: where it came from, why it is held,
    what it carries (ids only), and where a replay would send it."""

    held_in: str
    digest: str  # of the body: a handle for ``--id`` that every message has
    type_name: str | None
    message_id: str | None
    death: Death | None
    delivered: Address  # exchange and routing key it was delivered to ``held_in`` with
    items: tuple[Item, ...]
    item_count: int | None  # None when the body is unreadable and no bundle header says it
    readable: bool
    replayed_at: float | None

    @classmethod
    def from_message(cls, held_in: str, message: AbstractIncomingMessage) -> HeldMessage:
        headers = message.headers or {}
        items = _items(message.body)
        if items is not None:
            item_count: int | None = len(items)
        else:  # unreadable: the publisher's count, when it was a bundle
            bundle = headers.get(BUNDLE_HEADER)
            item_count = bundle if type(bundle) is int else None
        return cls(
            held_in=held_in,
            digest=hashlib.sha256(message.body).hexdigest()[:12],
            type_name=message.type,
            message_id=message.message_id,
            death=Death.latest(headers),
            delivered=Address(message.exchange or "", message.routing_key or ""),
            items=items or (),
            item_count=item_count,
            readable=items is not None,
            replayed_at=header_epoch_seconds(headers.get(topology.HEADER_REPLAYED_AT)),
        )

    @property
    def ids(self) -> set[str]:
        """Every value ``--id`` selects this message by."""
        found = {self.digest, *(item.id for item in self.items if item.id is not None)}
        if self.message_id:
            found.add(self.message_id)
        return found

    def matches(self, queues: Collection[str], ids: Collection[str]) -> bool:
        """No filter matches all; ``queues`` name where it is held or where it died."""
        in_queue = (
            not queues
            or self.held_in in queues
            or (self.death is not None and self.death.queue in queues)
        )
        return in_queue and (not ids or not self.ids.isdisjoint(ids))

    def route(self) -> Address | None:
        """Where a replay publishes it, or None when its origin is unknown.

        A dead-lettered message goes back to the queue it died in alone (the default exchange
        routes by queue name); one routed here by binding goes to the exchange and routing key it
        came with.
        """
        if self.death is not None:
            if not self.death.queue or self.death.queue in topology.HELD_FOR_PEOPLE:
                return None
            return Address("", self.death.queue)
        if self.delivered.exchange in INSPECT_EXCHANGES and self.delivered.routing_key:
            return self.delivered
        return None

    def row(self) -> dict[str, Any]:
        """What ``list`` shows: ids and masked users, never a text or any other field."""
        death, route = self.death, self.route()
        return {
            "held_in": self.held_in,
            "digest": self.digest,
            "died_in": death.queue if death else None,
            "reason": death.reason if death else None,
            "count": death.count if death else None,
            "first_death": _iso(death.first_time) if death else None,
            "delivered_with": None if death else str(self.delivered),
            "route": str(route) if route else None,
            "type": self.type_name,
            "message_id": mask_text(self.message_id) if self.message_id else None,
            "item_count": self.item_count,
            "items": [item.shown() for item in self.items],
            "readable": self.readable,
            "replayed_at": _iso_epoch(self.replayed_at),
        }


def replay_copy(message: AbstractIncomingMessage, route: Address, now: float | None = None) -> Copy:
    """``message`` as it is (body, type, ids, its own headers), marked as replayed."""
    headers = {
        name: value
        for name, value in (message.headers or {}).items()
        if name not in _BROKER_HEADERS
    }
    headers[topology.HEADER_REPLAYED_AT] = f"{time.time() if now is None else now:.3f}"
    return Copy(
        route,
        message.body,
        type_name=message.type or "",
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        headers=headers,
    )


def _items(body: bytes) -> tuple[Item, ...] | None:
    """The body's contracts (one object, or a bundle: an array); None when it is not JSON."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    parts = document if isinstance(document, list) else [document]
    return tuple(Item.of(part) if isinstance(part, Mapping) else Item(None, None) for part in parts)


def _first(fields: Mapping[str, Any], names: Sequence[str]) -> str | None:
    for name in names:
        value = fields.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _iso(when: datetime | None) -> str | None:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def _iso_epoch(seconds: float | None) -> str | None:
    return _iso(datetime.fromtimestamp(seconds, UTC)) if seconds is not None else None
