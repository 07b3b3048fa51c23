"""Reading a broadcast request (JSON, CSV), a recipient's command, and what the api makes of
the events about broadcast sends and of opt-out words."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from hiker.api.broadcast_tracking import BroadcastTracker
from hiker.api.broadcasting import (
    InvalidBroadcast,
    command_for,
    parse_csv,
    parse_json,
    parse_send_key,
    send_key,
)
from hiker.api.db.feeding import Fed, Limits, Publish
from hiker.api.scheduler import BroadcastScheduler, fixed_limit
from hiker.core.contracts import (
    MessageReceived,
    MessageSent,
    SendMessage,
    SendParked,
    StatusError,
    StatusReceived,
)
from hiker.core.errors import DatabaseUnavailable
from tests.support import wait_until

NUMBER = "100000000000001"
BROADCAST = "0123456789abcdef0123456789abcdef"


def test_json_request_is_read_and_duplicates_are_sent_once() -> None:
    body = (
        b'{"phone_number_id": "100000000000001", "name": "promo", '
        b'"template": {"name": "promo", "language": "en_US"}, '
        b'"recipients": [{"to": "15550001111", "parameters": ["Ana"]}, {"to": "15550002222"}, '
        b'{"to": "15550001111", "parameters": ["Ana again"]}], '
        b'"start_at": "2026-12-24T09:00:00Z", "marketing": true}'
    )
    request = parse_json(body)
    assert [(r.to, r.parameters) for r in request.recipients] == [
        ("15550001111", ("Ana",)),
        ("15550002222", ()),
    ]
    assert request.duplicates == 1
    assert request.marketing
    assert request.start_at == 1798102800.0
    assert request.template.name == "promo"


def test_bad_json_request_names_each_problem() -> None:
    body = (
        b'{"phone_number_id": "abc", "name": "", "template": {"name": "promo"}, '
        b'"recipients": [{"to": "15550001111"}, {"to": " 1555"}, {"to": "1", "parameters": [1]}], '
        b'"start_at": "tomorrow", "colour": "blue"}'
    )
    with pytest.raises(InvalidBroadcast) as caught:
        parse_json(body)
    fields = {field for field, _ in caught.value.problems}
    assert {
        "",
        "recipients[1].to",
        "recipients[2].parameters",
        "phone_number_id",
        "name",
        "start_at",
    } <= fields
    assert any(field.startswith("template") for field in fields)


@pytest.mark.parametrize("body", [b"[]", b"{", b'{"recipients": []}'])
def test_not_a_broadcast_is_refused(body: bytes) -> None:
    with pytest.raises(InvalidBroadcast):
        parse_json(body)


def test_csv_upload_takes_the_rest_from_the_query() -> None:
    body = b"to,name,order\n15550001111,Ana,42\n\n15550002222,Bo,43\n"
    query = {"phone_number_id": NUMBER, "name": "orders", "template": "order", "language": "en"}
    request = parse_csv(body, query)
    assert [(r.to, r.parameters) for r in request.recipients] == [
        ("15550001111", ("Ana", "42")),
        ("15550002222", ("Bo", "43")),
    ]
    assert (request.template.name, request.template.language) == ("order", "en")


@pytest.mark.parametrize("body", [b"phone\n1555\n", b"", b"to\n", b"\xff\xfe"])
def test_csv_without_a_to_column_or_users_is_refused(body: bytes) -> None:
    query = {"phone_number_id": NUMBER, "name": "x", "template": "t", "language": "en"}
    with pytest.raises(InvalidBroadcast):
        parse_csv(body, query)


def test_a_recipients_command_carries_its_send_key_and_parameters() -> None:
    header = {"type": "header", "parameters": [{"type": "image", "image": {"id": "1"}}]}
    body = {"type": "body", "parameters": [{"type": "text", "text": "old"}]}
    command = command_for(
        broadcast_id=BROADCAST,
        seq=7,
        phone_number_id=NUMBER,
        to="15550001111",
        template={"name": "promo", "language": "en", "components": [header, body]},
        parameters=["Ana"],
        kind="marketing",
    )
    assert command.idempotency_key == command.action_key(0) == send_key(BROADCAST, 7)
    assert command.kind == "marketing"
    (template,) = command.actions
    assert template.model_dump()["components"] == [
        header,
        {"type": "body", "parameters": [{"type": "text", "text": "Ana"}]},
    ]


@pytest.mark.parametrize(
    "key",
    [None, "api:abc", "broadcast:short:1", f"broadcast:{BROADCAST}:x", f"broadcast:{BROADCAST}:"],
)
def test_other_keys_are_no_broadcast_sends(key: str | None) -> None:
    assert parse_send_key(key) is None


class Recorded:
    def __init__(self) -> None:
        self.outcomes: list[tuple[str, int, str, int | None]] = []
        self.opt_outs: list[tuple[str, list[str], str]] = []

    async def advance(
        self, broadcast_id: str, seq: int, outcome: str, error_code: int | None = None
    ) -> bool:
        self.outcomes.append((broadcast_id, seq, outcome, error_code))
        return True

    async def add(self, phone_number_id: str, users: list[str], word: str, at_us: int) -> bool:
        self.opt_outs.append((phone_number_id, users, word))
        return True


def _tracker(recorded: Recorded) -> BroadcastTracker:
    return BroadcastTracker(recorded, recorded, frozenset({"stop", "unsubscribe"}))


async def test_outcomes_of_broadcast_sends_are_tracked_by_their_key() -> None:
    recorded = Recorded()
    tracker = _tracker(recorded)
    key = send_key(BROADCAST, 3)
    common = {"phone_number_id": NUMBER, "to": "15550001111", "correlation_id": key}
    await tracker.message_sent(
        MessageSent(
            idempotency_key=key, kind="broadcast", action_type="template", sent_at=1.0, **common
        )
    )
    await tracker.message_sent(
        MessageSent(idempotency_key=key, kind="reply", action_type="text", sent_at=1.0, **common)
    )
    await tracker.send_parked(
        SendParked(
            idempotency_key=key,
            kind="marketing",
            reason="permanent",
            graph_status="400",
            graph_code="132015",
            parked_at=1.0,
            **common,
        )
    )
    failed = StatusReceived(
        message_id="wamid.X",
        phone_number_id=NUMBER,
        status="failed",
        errors=(StatusError(code=131026),),
        received_at=1.0,
        biz_opaque_callback_data=key,
    )
    await tracker.status_received(failed)
    await tracker.status_received(failed.model_copy(update={"biz_opaque_callback_data": None}))
    await tracker.status_received(failed.model_copy(update={"status": "played", "errors": ()}))
    assert recorded.outcomes == [
        (BROADCAST, 3, "accepted", None),
        (BROADCAST, 3, "parked", 132015),
        (BROADCAST, 3, "failed", 131026),
    ]


@pytest.mark.parametrize(
    ("text", "opted"), [(" Stop ", True), ("UNSUBSCRIBE", True), ("stop it", False), (None, False)]
)
async def test_opt_out_words_trimmed_any_case(text: str | None, opted: bool) -> None:
    recorded = Recorded()
    event = MessageReceived(
        wamid="wamid.IN",
        phone_number_id=NUMBER,
        user="US.123",
        wa_id="15550001111",
        message_type="text",
        text=text,
        timestamp=1,
        received_at=1.0,
    )
    await _tracker(recorded).message_received(event)
    expected = [(NUMBER, ["US.123", "15550001111"], text.strip().upper())] if opted and text else []
    assert recorded.opt_outs == expected


class FlakyFeeder:
    """A feeder whose database is away for its first ``away`` ticks."""

    def __init__(self, away: int) -> None:
        self.away = away
        self.ticks: list[Limits] = []

    async def tick(self, now: float, limits: Limits, publish: Publish) -> Fed:
        self.ticks.append(limits)
        if len(self.ticks) <= self.away:
            raise DatabaseUnavailable("ConnectionRefusedError")
        return Fed(handed=1)


async def test_the_scheduler_outlives_its_database_being_away() -> None:
    feeder = FlakyFeeder(away=2)

    async def publish(_: Sequence[SendMessage]) -> None:
        return None

    scheduler = BroadcastScheduler(
        feeder,
        publish,
        rate_per_second=40.0,
        tick_seconds=0.01,
        messaging_limit=fixed_limit(250),
    )
    running = asyncio.create_task(scheduler.run_forever())
    try:
        await wait_until(lambda: _at_least(feeder, 4), 10, "ticks after the outage")
    finally:
        running.cancel()
    limits = feeder.ticks[-1]
    assert (limits.rate_per_second, limits.max_in_flight) == (40.0, 20)
    assert await limits.messaging_limit(["100000000000001"]) == 250


async def _at_least(feeder: FlakyFeeder, ticks: int) -> bool:
    return len(feeder.ticks) >= ticks
