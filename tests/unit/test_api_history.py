"""What the api records and how it reads back: statuses folded into one, times, cursors."""

from __future__ import annotations

import pytest

from hiker.api import cursors, history
from hiker.api.history import StatusAt, current_status
from hiker.core.contracts import (
    MessageReceived,
    MessageSent,
    SendParked,
    StatusError,
    StatusReceived,
)


def test_an_inbound_message_is_received_whatever_is_reported() -> None:
    assert current_status("in", [StatusAt("read", 1)], None) == ("received", None)


def test_an_outbound_message_takes_the_furthest_status_in_any_order() -> None:
    reported = [StatusAt("read", 3), StatusAt("sent", 1), StatusAt("delivered", 2)]
    assert current_status("out", reported, None) == ("read", None)
    assert current_status("out", [], None) == ("accepted", None)
    # Statuses hiker does not fold (deleted, warning, ...) are kept but change nothing.
    assert current_status("out", [StatusAt("warning", 1)], None) == ("accepted", None)


def test_a_failure_is_final_and_carries_meta_error() -> None:
    error = {"code": 131047, "title": "Re-engagement message", "message": None}
    reported = [StatusAt("sent", 1), StatusAt("failed", 2, error), StatusAt("delivered", 3)]
    assert current_status("out", reported, None) == ("failed", error)


def test_a_parked_send_has_failed_with_the_reason() -> None:
    parked = {"code": 190, "title": "parked: permanent"}
    assert current_status("out", [StatusAt("sent", 1)], parked) == ("failed", parked)


def test_times_are_exact_microseconds_shown_in_utc() -> None:
    assert history.to_us(1_700_000_000.123456) == 1_700_000_000_123_456
    assert history.iso(1_700_000_000_123_456) == "2023-11-14T22:13:20.123456Z"
    assert history.iso(0) == "1970-01-01T00:00:00Z"


def test_events_become_their_records() -> None:
    received = MessageReceived(
        wamid="wamid.A", phone_number_id="1", user="155", message_type="text", text="hi",
        timestamp=1_700_000_000, received_at=1_700_000_000.5, contact_name="Ana",
    )  # fmt: skip
    assert history.inbound(received) == history.Inbound(
        "wamid.A", "1", "155", "text", "hi", 1_700_000_000_500_000, "Ana"
    )
    sent = MessageSent(
        idempotency_key="reply:wamid.A", phone_number_id="1", to="155", kind="reply",
        correlation_id="wamid.A", action_type="buttons", text="Pick", graph_message_id="wamid.B",
        sent_at=2.0,
    )  # fmt: skip
    assert history.sent(sent) == history.Outbound(
        "reply:wamid.A", "1", "155", "reply", "buttons", "Pick", 2_000_000, "wamid.B"
    )
    status = StatusReceived(
        message_id="wamid.B", phone_number_id="1", status="failed", timestamp=3,
        errors=(StatusError(code=131047, title="Re-engagement message"),), received_at=4.0,
    )  # fmt: skip
    assert history.status(status) == history.Status(
        "wamid.B", "failed", 3_000_000,
        {"code": 131047, "title": "Re-engagement message", "message": None, "details": None},
    )  # fmt: skip
    parked = SendParked(
        idempotency_key="reply:wamid.A", phone_number_id="1", to="155", kind="reply",
        correlation_id="wamid.A", reason="permanent", graph_status="400", graph_code="131026",
        graph_error={"message": "Message undeliverable", "code": 131026}, parked_at=5.0,
    )  # fmt: skip
    record = history.parked(parked)
    assert record.error["code"] == 131026
    assert record.error["title"] == "parked: permanent"
    assert record.error["message"] == "Message undeliverable"
    assert (record.type, record.text) == (history.UNKNOWN_TYPE, None)  # an older sender's event
    in_doubt = parked.model_copy(
        update={"graph_code": "unknown", "graph_error": None, "action_type": "text", "text": "hi"}
    )
    assert history.parked(in_doubt).error["code"] is None
    assert (history.parked(in_doubt).type, history.parked(in_doubt).text) == ("text", "hi")


def test_cursors_round_trip_and_refuse_what_they_did_not_make() -> None:
    message = cursors.MessageCursor(1_700_000_000_000_000, 42)
    conversation = cursors.ConversationCursor(5, "100", "155")
    assert cursors.decode_messages(cursors.encode(message)) == message
    assert cursors.decode_conversations(cursors.encode(conversation)) == conversation
    assert "=" not in cursors.encode(conversation)
    for bad in ("", "!!!", "bm90IGpzb24", cursors.encode(conversation), "WyJtIiwxLHRydWVd"):
        with pytest.raises(cursors.BadCursor):
            cursors.decode_messages(bad)
    with pytest.raises(cursors.BadCursor):
        cursors.decode_conversations(cursors.encode(message))
