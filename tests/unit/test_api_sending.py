"""POST /v1/messages' logic on fakes: the action read as the rules file writes it (problems
named), and once per Idempotency-Key: the same id, one request per key, no publish once sent."""

from __future__ import annotations

from typing import Any

import pytest

from hiker.api import records
from hiker.api.sending import InvalidRequest, KeyReused, SendAcceptor, parse_send, send_id_of
from hiker.core.actions import Buttons, Text
from hiker.core.contracts import SendMessage
from hiker.core.errors import PublishFailed
from tests.fakes import Clock

BASE = {"phone_number_id": "100000000000001", "to": "15550001234"}


def problems(body: Any) -> list[tuple[str, str]]:
    with pytest.raises(InvalidRequest) as caught:
        parse_send(body)
    return caught.value.problems


def test_an_action_reads_as_in_the_rules_file() -> None:
    assert parse_send({**BASE, "text": "hi"}).action == Text(body="hi")
    request = parse_send(
        {**BASE, "buttons": {"body": "Pick", "options": [{"id": "a", "title": "A"}]}}
    )
    assert isinstance(request.action, Buttons)
    assert (request.phone_number_id, request.to) == (BASE["phone_number_id"], BASE["to"])


def test_what_is_wrong_is_named_with_meta_limits() -> None:
    four = [{"id": str(n), "title": str(n)} for n in range(4)]
    assert problems({**BASE, "buttons": {"body": "x", "options": four}}) == [
        ("buttons.options", "at most 3 (Meta's limit), not 4")
    ]
    long_title = [{"id": "a", "title": "x" * 21}]
    assert (
        "buttons.options.0.title",
        "at most 20 characters (Meta's limit), not 21",
    ) in problems({**BASE, "buttons": {"body": "x", "options": long_title}})
    assert problems({**BASE, "text": {"body": "hi", "quote": True}})[0][0] == "text.quote"
    assert problems({**BASE, "reaction": {"emoji": "x"}})[0][0] == "reaction.message_id"
    assert problems({**BASE, "poll": {}})[0][0] == "poll"
    assert problems({**BASE, "text": 5})[0][0] == "text"
    assert problems({**BASE, "image": {"link": "http://example.com/a.jpg"}}) == [
        ("image.link", "must be an https:// URL: Meta requires HTTPS for media links")
    ]


def test_the_envelope_is_checked_too() -> None:
    assert problems([]) == [("", "the body must be a JSON object")]
    found = dict(problems({"text": "hi"}))
    assert set(found) == {"phone_number_id", "to"}
    assert dict(problems({**BASE, "phone_number_id": "abc", "text": "hi"}))["phone_number_id"]
    assert dict(problems({**BASE, "to": " 155", "text": "hi"}))["to"]
    assert "exactly one action" in problems(BASE)[0][1]
    assert "not 2" in problems({**BASE, "text": "a", "sticker": {"id": "x"}})[0][1]


class FakeSends:
    def __init__(self) -> None:
        self.rows: dict[str, records.Outbound] = {}
        self.sent: set[str] = set()

    async def find_send(self, idempotency_key: str) -> records.SendRecord | None:
        row = self.rows.get(idempotency_key)
        if row is None or row.send_id is None or row.request_hash is None:
            return None
        return records.SendRecord(row.send_id, row.request_hash, idempotency_key in self.sent)

    async def add_outbound(self, message: records.Outbound) -> bool:
        if message.idempotency_key in self.rows:
            return False
        self.rows[message.idempotency_key] = message
        return True


def acceptor() -> tuple[SendAcceptor, FakeSends, list[SendMessage]]:
    sends = FakeSends()
    published: list[SendMessage] = []

    async def publish(command: SendMessage) -> None:
        published.append(command)

    return SendAcceptor(sends, publish, clock=Clock(10.0)), sends, published


async def test_the_same_key_gets_the_same_id_and_one_record() -> None:
    accept, sends, published = acceptor()
    request = parse_send({**BASE, "text": "hi"})
    first = await accept.accept(request, "order-1")
    again = await accept.accept(request, "order-1")
    assert first.send_id == again.send_id == send_id_of("order-1")
    assert (first.repeated, again.repeated) == (False, True)
    # Published again while Graph has not taken it: the sender's claim makes it one send.
    assert [c.idempotency_key for c in published] == [f"api:{first.send_id}"] * 2
    (command,) = set(published)
    assert (command.kind, command.actions, command.to) == ("api", (Text(body="hi"),), BASE["to"])
    (row,) = sends.rows.values()
    assert (row.send_id, row.type, row.text, row.at_us) == (first.send_id, "text", "hi", 10_000_000)


async def test_once_sent_a_repeat_publishes_nothing() -> None:
    accept, sends, published = acceptor()
    request = parse_send({**BASE, "text": "hi"})
    first = await accept.accept(request, "order-2")
    sends.sent.add(f"api:{first.send_id}")
    assert (await accept.accept(request, "order-2")).send_id == first.send_id
    assert len(published) == 1


async def test_a_key_reused_for_another_request_is_refused() -> None:
    accept, _, published = acceptor()
    await accept.accept(parse_send({**BASE, "text": "hi"}), "order-3")
    with pytest.raises(KeyReused):
        await accept.accept(parse_send({**BASE, "text": "bye"}), "order-3")
    assert len(published) == 1


async def test_nothing_is_recorded_when_the_broker_refuses() -> None:
    sends = FakeSends()

    async def refuse(_: SendMessage) -> None:
        raise PublishFailed("broker away")

    with pytest.raises(PublishFailed):
        await SendAcceptor(sends, refuse).accept(parse_send({**BASE, "text": "hi"}), "order-4")
    assert sends.rows == {}
