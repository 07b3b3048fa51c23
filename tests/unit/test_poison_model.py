"""How ``hiker poison`` reads a held message: its death, its items, and where a replay sends it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

from aio_pika.abc import AbstractIncomingMessage

from hiker.core import topology
from hiker.core.bundles import BUNDLE_HEADER
from hiker.core.topology import HEADER_REPLAYED_AT
from hiker.tools.heldqueue import Address
from hiker.tools.poison.model import (
    HeldMessage,
    replay_copy,
)

DIED = datetime(2026, 12, 1, 19, 40, 18, tzinfo=UTC)


def delivered(
    body: bytes,
    headers: dict[str, Any] | None = None,
    *,
    exchange: str = topology.DEAD_EXCHANGE,
    routing_key: str = topology.RK_POISON,
) -> AbstractIncomingMessage:
    """The properties of a delivered message that the model reads, as aio-pika presents them."""
    message = SimpleNamespace(
        body=body,
        headers=headers or {},
        type="SendMessage",
        message_id="m-1",
        correlation_id="c-1",
        exchange=exchange,
        routing_key=routing_key,
    )
    return cast(AbstractIncomingMessage, message)


def death(queue: object, reason: object = "rejected") -> dict[str, Any]:
    return {"x-death": [{"queue": queue, "reason": reason, "count": 2, "time": DIED}]}


def test_the_latest_death_says_where_why_how_often_and_since_when() -> None:
    held = HeldMessage.from_message(
        topology.POISON_QUEUE, delivered(b"{}", death(b"hiker.sender.outbox", b"delivery_limit"))
    )
    assert held.death is not None
    assert (held.death.queue, held.death.reason, held.death.count) == (
        "hiker.sender.outbox",
        "delivery_limit",
        2,
    )
    assert held.row()["first_death"] == "2026-12-01T19:40:18Z"
    assert held.route() == Address("", "hiker.sender.outbox")


def test_ids_are_masked_when_shown_but_select_as_they_are() -> None:
    key = "followup:100000000000001:15551234567:wamid.X"
    body = json.dumps([{"idempotency_key": key, "to": "15551234567", "text": "secret"}])
    held = HeldMessage.from_message(topology.POISON_QUEUE, delivered(body.encode()))
    [item] = held.row()["items"]
    assert "15551234567" not in json.dumps(held.row())
    assert "secret" not in json.dumps(held.row())
    assert item["user"] == "*******4567"
    assert held.matches((), [key])
    assert held.matches((), [held.digest])
    assert not held.matches((), ["another"])


def test_an_unreadable_bundle_counts_its_items_by_its_header() -> None:
    held = HeldMessage.from_message(topology.POISON_QUEUE, delivered(b"\xff", {BUNDLE_HEADER: 3}))
    assert (held.readable, held.item_count, held.items) == (False, 3, ())


def test_a_message_without_a_known_origin_has_no_route() -> None:
    # No x-death: as delivered, its route would lead back into the poison queue.
    assert HeldMessage.from_message(topology.POISON_QUEUE, delivered(b"{}")).route() is None
    # Died in a queue held for people: nothing consumes it there.
    held_for_people = delivered(b"{}", death(topology.SENDER_PARKED_QUEUE))
    assert HeldMessage.from_message(topology.POISON_QUEUE, held_for_people).route() is None


def test_an_inspected_message_goes_back_the_way_it_came() -> None:
    inspected = delivered(
        b"{}", exchange=topology.INBOUND_EXCHANGE, routing_key="change.account_update"
    )
    held = HeldMessage.from_message(topology.INSPECT_QUEUE, inspected)
    assert held.route() == Address(topology.INBOUND_EXCHANGE, "change.account_update")
    assert held.matches([topology.INSPECT_QUEUE], ())
    assert not held.matches(["hiker.conversation.inbound"], ())


def test_a_replayed_copy_keeps_its_own_headers_and_drops_the_brokers() -> None:
    headers = {
        **death("hiker.sender.outbox"),
        "x-delivery-count": 10,
        "x-first-death-queue": "hiker.sender.outbox",
        BUNDLE_HEADER: 2,
        topology.HEADER_CORRELATION_ID: "wamid.X",
        topology.HEADER_ATTEMPT: 3,
    }
    copy = replay_copy(delivered(b"[]", headers), Address("", "hiker.sender.outbox"), now=12.5)
    assert copy.headers == {
        BUNDLE_HEADER: 2,
        topology.HEADER_CORRELATION_ID: "wamid.X",
        topology.HEADER_ATTEMPT: 3,
        HEADER_REPLAYED_AT: "12.500",
    }
    assert (copy.body, copy.type_name, copy.message_id, copy.correlation_id) == (
        b"[]",
        "SendMessage",
        "m-1",
        "c-1",
    )
