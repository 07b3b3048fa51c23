"""POST /v1/messages' logic on fakes: the action read as the rules file writes it (problems
named), and once per Idempotency-Key: the same id, one request per key, one publish, a key in
flight answered so, a key left by a crash taken over after its lease."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from hiker.api import history
from hiker.api.sending import (
    InvalidRequest,
    KeyInFlight,
    KeyReused,
    SendAcceptor,
    parse_send,
    send_id_of,
)
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
    """The keys and rows as ``RecordStore`` keeps them (its SQL is tested against SQLite and
    PostgreSQL in tests/integration/api)."""

    def __init__(self) -> None:
        self.rows: dict[str, history.Outbound] = {}
        self.keys: dict[str, history.KeyState] = {}

    async def claim_key(
        self,
        key: str,
        *,
        send_id: str,
        request_hash: str,
        holder: str,
        now_us: int,
        lease_until_us: int,
    ) -> history.KeyState | None:
        known = self.keys.get(key)
        if known is None:
            known = history.KeyState(send_id, request_hash, holder, lease_until_us, 1, False)
        elif (
            not known.published
            and known.lease_until_us <= now_us
            and known.request_hash == request_hash
        ):
            known = replace(
                known, holder=holder, lease_until_us=lease_until_us, attempts=known.attempts + 1
            )
        self.keys[key] = known
        return known

    async def release_key(self, key: str, holder: str) -> None:
        known = self.keys[key]
        if known.holder == holder and not known.published:
            self.keys[key] = replace(known, lease_until_us=0)

    async def finish_key(self, key: str, now_us: int) -> None:
        self.keys[key] = replace(self.keys[key], published=True)

    async def add_outbound(self, message: history.Outbound) -> bool:
        if message.idempotency_key in self.rows:
            return False
        self.rows[message.idempotency_key] = message
        return True


def acceptor(
    clock: Clock | None = None,
) -> tuple[SendAcceptor, FakeSends, list[SendMessage]]:
    sends = FakeSends()
    published: list[SendMessage] = []

    async def publish(command: SendMessage) -> None:
        published.append(command)

    return SendAcceptor(sends, publish, clock=clock or Clock(10.0)), sends, published


async def test_the_same_key_gets_the_same_id_one_record_and_one_publish() -> None:
    accept, sends, published = acceptor()
    request = parse_send({**BASE, "text": "hi"})
    first = await accept.accept(request, "order-1")
    again = await accept.accept(request, "order-1")
    assert first.send_id == again.send_id == send_id_of("order-1")
    assert (first.repeated, again.repeated) == (False, True)
    (command,) = published
    assert command.idempotency_key == f"api:{first.send_id}"
    assert (command.kind, command.actions, command.to) == ("api", (Text(body="hi"),), BASE["to"])
    (row,) = sends.rows.values()
    assert (row.send_id, row.type, row.text, row.at_us) == (first.send_id, "text", "hi", 10_000_000)


async def test_a_key_reused_for_another_request_is_refused() -> None:
    accept, _, published = acceptor()
    await accept.accept(parse_send({**BASE, "text": "hi"}), "order-3")
    with pytest.raises(KeyReused):
        await accept.accept(parse_send({**BASE, "text": "bye"}), "order-3")
    assert len(published) == 1


async def test_a_key_in_flight_is_answered_so_and_nothing_more_is_published() -> None:
    sends, published = FakeSends(), []
    request = parse_send({**BASE, "text": "hi"})
    seen: list[BaseException] = []

    async def publish(command: SendMessage) -> None:
        # While this request publishes, the same one and another one arrive with its key.
        for body in (request, parse_send({**BASE, "text": "other"})):
            try:
                await accept.accept(body, "order-5")
            except (KeyInFlight, KeyReused) as exc:
                seen.append(exc)
        published.append(command)

    accept = SendAcceptor(sends, publish, clock=Clock(10.0), lease_seconds=15)
    await accept.accept(request, "order-5")
    in_flight, reused = seen
    assert isinstance(in_flight, KeyInFlight)
    assert in_flight.retry_after == 15
    assert isinstance(reused, KeyReused)
    assert len(published) == 1


async def test_nothing_is_recorded_when_the_broker_refuses_and_a_retry_goes_at_once() -> None:
    sends = FakeSends()
    refusing = True
    published: list[SendMessage] = []

    async def publish(command: SendMessage) -> None:
        if refusing:
            raise PublishFailed("broker away")
        published.append(command)

    accept = SendAcceptor(sends, publish, clock=Clock(10.0))
    request = parse_send({**BASE, "text": "hi"})
    with pytest.raises(PublishFailed):
        await accept.accept(request, "order-4")
    assert sends.rows == {}
    refusing = False
    # The key was given back: no need to wait out its lease.
    assert (await accept.accept(request, "order-4")).send_id == send_id_of("order-4")
    assert len(published) == 1


async def test_a_key_left_by_a_crash_is_taken_over_after_its_lease() -> None:
    clock = Clock(10.0)
    accept, sends, published = acceptor(clock)
    request = parse_send({**BASE, "text": "hi"})
    key = f"api:{send_id_of('order-6')}"
    # A request took the key and died before publishing.
    await sends.claim_key(
        key,
        send_id=send_id_of("order-6"),
        request_hash=request.digest(),
        holder="crashed",
        now_us=10_000_000,
        lease_until_us=25_000_000,
    )
    with pytest.raises(KeyInFlight) as caught:
        await accept.accept(request, "order-6")
    assert caught.value.retry_after == 15
    assert published == []
    clock.advance(15)
    with pytest.raises(KeyReused):  # another request is still refused
        await accept.accept(parse_send({**BASE, "text": "bye"}), "order-6")
    taken = await accept.accept(request, "order-6")
    assert (taken.repeated, taken.taken_over) == (True, True)
    assert len(published) == 1
    assert sends.keys[key].published
    again = await accept.accept(request, "order-6")
    assert (again.repeated, again.taken_over) == (True, False)
    assert len(published) == 1
