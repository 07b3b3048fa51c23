"""Events for a backend: ids derived from the fact, readable payloads, the envelope's shape."""

from __future__ import annotations

import json

from hiker.core.contracts import (
    MessageReceived,
    SendParked,
    StatusError,
    StatusPricing,
    StatusReceived,
)
from hiker.events.model import (
    EVENT_TYPES,
    event_id,
    from_message,
    from_parked,
    from_status,
    iso,
    owner_changed,
)

MESSAGE = MessageReceived(
    wamid="wamid.A1",
    phone_number_id="100000000000001",
    user="15550001234",
    wa_id="15550001234",
    contact_name="Ada",
    message_type="text",
    text="hello",
    timestamp=1_767_225_600,
    received_at=1_767_225_601.25,
    raw={"from": "15550001234", "id": "wamid.A1", "text": {"body": "hello"}},
)


def test_a_message_event_is_the_envelope_with_readable_data_and_no_raw_webhook() -> None:
    body = json.loads(from_message(MESSAGE).stamped(7).to_bytes())
    assert set(body) == {"id", "type", "at", "phone_number_id", "user", "seq", "data"}
    assert body["type"] == "message.received"
    assert body["at"] == "2026-01-01T00:00:00.000Z"
    assert (body["phone_number_id"], body["user"], body["seq"]) == (
        "100000000000001",
        "15550001234",
        7,
    )
    assert body["data"]["text"] == "hello"
    assert body["data"]["type"] == "text"
    assert "raw" not in body["data"]


def test_ids_depend_on_the_fact_only() -> None:
    later = MESSAGE.model_copy(update={"received_at": MESSAGE.received_at + 3600})
    assert from_message(later).id == from_message(MESSAGE).id
    other = MESSAGE.model_copy(update={"wamid": "wamid.A2"})
    assert from_message(other).id != from_message(MESSAGE).id
    assert from_message(MESSAGE).id.startswith("evt_")


def test_each_status_of_a_message_is_an_event_of_its_own() -> None:
    def status(state: str, received_at: float) -> StatusReceived:
        return StatusReceived(
            message_id="wamid.OUT1",
            phone_number_id="100000000000001",
            recipient_id="15550001234",
            status=state,
            timestamp=1_767_225_700,
            errors=(StatusError(code=131047, title="Re-engagement message"),),
            received_at=received_at,
        )

    delivered, read = from_status(status("delivered", 1.0)), from_status(status("read", 1.0))
    assert delivered is not None
    assert read is not None
    assert delivered.id != read.id
    again = from_status(status("delivered", 99.0))
    assert again is not None
    assert again.id == delivered.id
    data = json.loads(delivered.stamped(1).to_bytes())["data"]
    assert data["errors"] == [
        {"code": 131047, "title": "Re-engagement message", "message": None, "details": None}
    ]
    nobody = status("sent", 1.0).model_copy(update={"recipient_id": None})
    assert from_status(nobody) is None


def test_a_send_parked_again_after_a_replay_is_a_new_event() -> None:
    parked = SendParked(
        idempotency_key="reply:wamid.A1",
        phone_number_id="100000000000001",
        to="15550001234",
        kind="reply",
        correlation_id="wamid.A1",
        reason="permanent",
        graph_status="400",
        graph_code="131047",
        parked_at=1_767_225_800.0,
    )
    first, redelivered = from_parked(parked), from_parked(parked)
    again = from_parked(parked.model_copy(update={"parked_at": 1_767_229_400.0}))
    assert first.id == redelivered.id != again.id
    assert first.user == "15550001234"
    assert first.type == "send.parked"


def test_conversation_owner_has_its_type_and_model_ready() -> None:
    assert "conversation.owner" in EVENT_TYPES
    event = owner_changed(
        "100000000000001", "15550001234", "human", changed_at=1_767_225_600, until=1_767_229_200
    )
    body = json.loads(event.stamped(3).to_bytes())
    assert body["type"] == "conversation.owner"
    assert body["data"]["owner"] == "human"
    assert body["data"]["until"] == "2026-01-01T01:00:00.000Z"


def test_ids_and_times() -> None:
    assert event_id("message.received", "a", "b") == event_id("message.received", "a", "b")
    assert event_id("message.received", "a", "b") != event_id("message.status", "a", "b")
    assert iso(1_767_225_600.5) == "2026-01-01T00:00:00.500Z"


def test_a_status_event_tells_a_backend_why_a_send_failed_and_what_a_priced_one_costs() -> None:
    failed = StatusReceived(
        message_id="wamid.OUT1",
        phone_number_id="100000000000001",
        recipient_id="15550001234",
        status="failed",
        errors=(StatusError(code=131049, title="not delivered", details="marketing limit"),),
        received_at=1_767_225_601.0,
        biz_opaque_callback_data="api:snd_1",
    )
    event = from_status(failed)
    assert event is not None
    data = json.loads(event.stamped(1).to_bytes())["data"]
    assert data["errors"] == [
        {"code": 131049, "title": "not delivered", "message": None, "details": "marketing limit"}
    ]
    assert (data["callback_data"], data["pricing"]) == ("api:snd_1", None)
    priced = failed.model_copy(
        update={
            "status": "delivered",
            "errors": (),
            "pricing": StatusPricing(pricing_model="PMP", type="regular", category="utility"),
        }
    )
    event = from_status(priced)
    assert event is not None
    data = json.loads(event.stamped(2).to_bytes())["data"]
    assert data["pricing"] == {
        "pricing_model": "PMP",
        "type": "regular",
        "category": "utility",
        "billable": None,
        "charged": True,
    }
