"""Conversation Routing's webhook fields: ``messaging_handovers`` notices and ``standby`` copies,
in every entry and change of a body, and what cannot be read kept whole."""

from __future__ import annotations

from typing import Any

import pytest

from hiker.core.contracts import ChangeReceived, ControlChanged, MessageReceived
from hiker.ingress.webhook import Routed, route
from hiker.tools.simulate import (
    handover_change,
    messages_change,
    standby_change,
    text_message,
    webhook_body,
)

PNID = "100000000000001"


def routed(body: dict[str, Any]) -> list[Routed]:
    result = route(body, received_at=7.0)
    assert isinstance(result, list)
    return result


def test_every_notice_of_every_entry_is_its_own_control_change() -> None:
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {"id": "1", "changes": [handover_change("15550001111", "taken", metadata="to Ana")]},
            {
                "id": "2",
                "changes": [
                    handover_change("15550002222", "passed"),
                    messages_change([text_message("15550003333", "hi")]),
                ],
            },
        ],
    }
    result = routed(body)
    assert [r.routing_key for r in result] == ["control.taken", "control.passed", "message.text"]
    taken, passed = (r.event for r in result[:2])
    assert taken == ControlChanged(
        phone_number_id=PNID,
        user="15550001111",
        control="taken",
        metadata="to Ana",
        received_at=7.0,
        raw=body["entry"][0]["changes"][0]["value"],
    )
    assert isinstance(passed, ControlChanged)
    assert (passed.user, passed.control, passed.metadata) == ("15550002222", "passed", None)


def test_the_object_present_names_the_notice_when_type_does_not() -> None:
    change = handover_change("15550001111", "passed")
    del change["value"]["type"]
    [result] = routed(webhook_body(change))
    assert isinstance(result.event, ControlChanged)
    assert result.event.control == "passed"


def test_a_notice_keyed_as_earlier_copies_of_metas_example_is_read() -> None:
    # ``recipient: {phone_number_id}`` in place of ``metadata``, a "+" before the number, and
    # the business-scoped id preferred when the sender carries one.
    value = {
        "messaging_product": "whatsapp",
        "recipient": {"display_phone_number": "15550000000", "phone_number_id": PNID},
        "sender": {"phone_number": "+15550001111", "user_id": "US.13491208655302741918"},
        "type": "control_taken",
        "control_taken": {},
    }
    [result] = routed(webhook_body({"field": "messaging_handovers", "value": value}))
    assert isinstance(result.event, ControlChanged)
    assert (result.event.phone_number_id, result.event.user) == (PNID, "US.13491208655302741918")
    value["sender"] = {"phone_number": "+15550001111"}
    [result] = routed(webhook_body({"field": "messaging_handovers", "value": value}))
    assert isinstance(result.event, ControlChanged)
    assert result.event.user == "15550001111"


@pytest.mark.parametrize(
    "breaks",
    [
        {"type": "control_released", "control_taken": None},  # neither object
        {"control_passed": {}, "type": None},  # both objects, no type to choose
        {"sender": None},  # no user
        {"metadata": None},  # no business number
        {"metadata": {"phone_number_id": "../../me"}},  # not a number Graph knows
    ],
)
def test_a_notice_that_cannot_be_read_is_kept_whole_and_the_rest_goes_through(
    breaks: dict[str, Any],
) -> None:
    change = handover_change("15550001111", "taken")
    for key, part in breaks.items():
        if part is None:
            change["value"].pop(key, None)
        else:
            change["value"][key] = part
    body = webhook_body(change, messages_change([text_message("15550003333", "hi")]))
    kept, message = routed(body)
    assert kept.routing_key == "unknown"
    assert kept.event == ChangeReceived(
        entry_id="100000000000000",
        field="messaging_handovers",
        value=change["value"],
        received_at=7.0,
    )
    assert isinstance(message.event, MessageReceived)


def test_standby_copies_are_messages_marked_standby_and_the_rest_is_kept() -> None:
    change = standby_change([text_message("15550001111", "hi"), text_message("15550002222", "yo")])
    echo = {"from": "15550000000", "to": "15550001111", "id": "wamid.MBA", "type": "text"}
    change["value"]["message_echoes"] = [echo]
    result = routed(webhook_body(messages_change([text_message("15550003333", "hey")]), change))
    assert [r.routing_key for r in result] == [
        "message.text",
        "message.text",
        "message.text",
        "change.standby",
    ]
    events = [r.event for r in result]
    assert [(e.user, e.standby) for e in events if isinstance(e, MessageReceived)] == [
        ("15550003333", False),
        ("15550001111", True),
        ("15550002222", True),
    ]
    assert events[-1] == ChangeReceived(field="standby", value=change["value"], received_at=7.0)


def test_a_standby_change_of_messages_only_keeps_nothing_else() -> None:
    result = routed(webhook_body(standby_change([text_message("15550001111", "hi")])))
    assert [r.routing_key for r in result] == ["message.text"]
