"""Classification of webhook bodies, including every update kind in pywa's corpus."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from hiker.core.contracts import (
    ChangeReceived,
    MessageEchoed,
    MessageReceived,
    StatusReceived,
    WebhookErrorReceived,
)
from hiker.ingress.webhook import MalformedBody, Unclassified, message_text, parse, route
from hiker.tools.simulate import messages_change, text_message, webhook_body

# Another project's webhook bodies, read where they lie (never copied): beside this checkout by
# default, anywhere else with HIKER_TEST_WEBHOOK_CORPUS.
FIXTURES = Path(
    os.environ.get("HIKER_TEST_WEBHOOK_CORPUS")
    or Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "pywa-updates"
)


def corpus() -> list[tuple[str, dict[str, Any]]]:
    if not FIXTURES.is_dir():
        return []
    cases = []
    for path in sorted(FIXTURES.glob("*.json")):
        for name, body in json.loads(path.read_text()).items():
            cases.append((f"{path.stem}:{name}", body))
    return cases


CORPUS = corpus()


def test_corpus_is_present_where_ci_runs() -> None:
    if not CORPUS:
        if os.environ.get("CI"):
            pytest.fail(f"webhook corpus missing at {FIXTURES}")
        pytest.skip(f"webhook corpus not found at {FIXTURES} (set HIKER_TEST_WEBHOOK_CORPUS)")
    assert len(CORPUS) > 50


@pytest.mark.parametrize(("name", "body"), CORPUS, ids=[name for name, _ in CORPUS])
def test_every_corpus_update_is_classified_without_loss(name: str, body: dict[str, Any]) -> None:
    result = route(body, received_at=1.0)
    assert not isinstance(result, Unclassified), name
    changes = [c for e in body["entry"] for c in e["changes"]]
    expected = 0
    for change in changes:
        value = change["value"]
        if change["field"] == "messages":
            expected += sum(len(value.get(k, [])) for k in ("messages", "statuses", "errors"))
        else:
            expected += 1
    assert len(result) == expected
    for item in result:
        assert "." not in item.routing_key.split(".", 1)[-1]
        if isinstance(item.event, MessageReceived):
            assert item.event.wamid
            assert item.event.user
            assert item.correlation_id == item.event.wamid
        if isinstance(item.event, ChangeReceived):
            assert item.routing_key in (f"change.{item.event.field}", "unknown")


def test_batch_yields_every_message_status_and_error_in_order() -> None:
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [messages_change([text_message("111", "a"), text_message("222", "b")])],
            },
            {
                "id": "2",
                "changes": [
                    messages_change(
                        statuses=[{"id": "wamid.S", "status": "read", "timestamp": "1"}]
                    ),
                    {
                        "field": "messages",
                        "value": {
                            "metadata": {"phone_number_id": "9"},
                            "errors": [{"code": 131000, "title": "Something went wrong"}],
                        },
                    },
                ],
            },
        ],
    }
    result = route(body, received_at=5.0)
    assert not isinstance(result, Unclassified)
    kinds = [type(item.event) for item in result]
    assert kinds == [MessageReceived, MessageReceived, StatusReceived, WebhookErrorReceived]
    assert [item.routing_key for item in result] == [
        "message.text",
        "message.text",
        "status.read",
        "error",
    ]
    first = result[0].event
    assert isinstance(first, MessageReceived)
    assert (first.user, first.text, first.received_at) == ("111", "a", 5.0)


def test_user_falls_back_to_the_business_scoped_id() -> None:
    message = {
        "from_user_id": "US.123",
        "id": "wamid.B",
        "timestamp": "1",
        "type": "text",
        "text": {"body": "hello"},
    }
    result = route(webhook_body(messages_change([message])), received_at=1.0)
    assert not isinstance(result, Unclassified)
    event = result[0].event
    assert isinstance(event, MessageReceived)
    assert event.user == "US.123"


def _bsuid_value(message: dict[str, Any], contact: dict[str, Any]) -> dict[str, Any]:
    body = webhook_body(messages_change([message]))
    body["entry"][0]["changes"][0]["value"]["contacts"] = [contact]
    return body


def test_the_business_scoped_id_keys_the_user_and_the_phone_number_travels_beside_it() -> None:
    # As Meta's BSUID pages show a message from a user whose phone number is known.
    message = {
        "from": "16505551234",
        "from_user_id": "US.13491208655302741918",
        "from_parent_user_id": "US.ENT.11815799212886844830",
        "id": "wamid.C",
        "timestamp": "1",
        "type": "text",
        "text": {"body": "hi"},
    }
    contact = {
        "profile": {"name": "Ana", "username": "@ana"},
        "wa_id": "16505551234",
        "user_id": "US.13491208655302741918",
        "parent_user_id": "US.ENT.11815799212886844830",
    }
    result = route(_bsuid_value(message, contact), received_at=1.0)
    assert not isinstance(result, Unclassified)
    event = result[0].event
    assert isinstance(event, MessageReceived)
    assert event.user == "US.13491208655302741918"
    assert event.wa_id == "16505551234"
    assert event.user_id == "US.13491208655302741918"
    assert event.parent_user_id == "US.ENT.11815799212886844830"
    assert (event.username, event.contact_name) == ("@ana", "Ana")


def test_a_user_without_a_phone_number_is_keyed_by_the_bsuid_from_contacts() -> None:
    message = {"id": "wamid.D", "timestamp": "1", "type": "text", "text": {"body": "hi"}}
    message["from_user_id"] = "BR.1502576394655843"
    contact = {"profile": {"username": "@bia"}, "user_id": "BR.1502576394655843"}
    result = route(_bsuid_value(message, contact), received_at=1.0)
    assert not isinstance(result, Unclassified)
    event = result[0].event
    assert isinstance(event, MessageReceived)
    assert (event.user, event.wa_id, event.username) == ("BR.1502576394655843", None, "@bia")


@pytest.mark.parametrize(
    ("kind", "ids"),
    [
        ("user_changed_user_id", {"user_id": "US.2222"}),
        ("user_changed_number", {"user_id": "US.2222", "wa_id": "16505559999"}),
    ],
)
def test_a_change_of_the_users_ids_belongs_to_the_new_ids(kind: str, ids: dict[str, str]) -> None:
    system = {"body": "changed", "type": kind, "previous_user_id": "US.1111", **ids}
    message = {"id": "wamid.SYS", "timestamp": "1", "type": "system", "system": system}
    result = route(webhook_body(messages_change([message])), received_at=1.0)
    assert not isinstance(result, Unclassified)
    [routed] = result
    assert routed.routing_key == "message.system"
    event = routed.event
    assert isinstance(event, MessageReceived)
    assert (event.user, event.user_id, event.wa_id) == ("US.2222", "US.2222", ids.get("wa_id"))


def test_an_event_of_an_older_ingress_still_parses() -> None:
    old = {
        "wamid": "wamid.E",
        "phone_number_id": "1",
        "user": "111",
        "wa_id": "111",
        "message_type": "text",
        "timestamp": 1,
        "received_at": 1.0,
    }
    event = MessageReceived.model_validate(old)
    assert (event.user_id, event.parent_user_id, event.username) == (None, None, None)


def test_a_status_names_the_recipient_by_phone_number_and_bsuid() -> None:
    status = {
        "id": "wamid.S",
        "status": "delivered",
        "timestamp": "2",
        "recipient_id": "16505551234",
        "recipient_user_id": "US.13491208655302741918",
        "recipient_parent_user_id": "US.ENT.11815799212886844830",
    }
    result = route(webhook_body(messages_change([], statuses=[status])), received_at=1.0)
    assert not isinstance(result, Unclassified)
    event = result[0].event
    assert isinstance(event, StatusReceived)
    assert event.recipient_user_id == "US.13491208655302741918"
    assert event.recipient_parent_user_id == "US.ENT.11815799212886844830"


@pytest.mark.parametrize(
    "document",
    [
        {"hello": "world"},
        [],
        "text",
        42,
        {"object": "page", "entry": [{"changes": []}]},
        {"object": "whatsapp_business_account", "entry": []},
    ],
)
def test_foreign_documents_are_unclassified(document: Any) -> None:
    assert isinstance(route(document, received_at=1.0), Unclassified)


def test_unreadable_messages_change_is_kept_while_the_rest_goes_through() -> None:
    broken = {
        "field": "messages",
        "value": {"metadata": {"phone_number_id": "1"}, "messages": [{"id": "wamid.X"}]},
    }
    body = webhook_body(broken, messages_change([text_message("111", "ok")]))
    result = route(body, received_at=1.0)
    assert not isinstance(result, Unclassified)
    assert [item.routing_key for item in result] == ["unknown", "message.text"]


def test_routing_keys_cannot_be_steered_by_payload_dots() -> None:
    message = {"from": "1", "id": "wamid.D", "timestamp": "1", "type": "a.b.#"}
    result = route(webhook_body(messages_change([message])), received_at=1.0)
    assert not isinstance(result, Unclassified)
    assert result[0].routing_key == "message.a_b__"


@pytest.mark.parametrize(
    "kind",
    ["ñandú", "\U00020000" * 64, "текст", "٣", "a\u0301", "😀" * 80, "x" * 300],
)
def test_routing_keys_are_ascii_short_strings_whatever_the_payload_names(kind: str) -> None:
    # isalnum() is true for other scripts' letters and digits: 64 of them at 4 bytes each made a
    # routing key over AMQP's 255-byte short string, a 500 on every retry of Meta's.
    message = {"from": "1", "id": "wamid.U", "timestamp": "1", "type": kind}
    status = {"id": "wamid.S", "status": kind, "recipient_id": "1"}
    change = messages_change([message], statuses=[status])
    foreign = {"field": kind, "value": {"anything": 1}}
    result = route(webhook_body(change, foreign), received_at=1.0)
    assert not isinstance(result, Unclassified)
    assert [type(item.event) for item in result] == [
        MessageReceived,
        StatusReceived,
        ChangeReceived,
    ]
    for item in result:
        assert item.routing_key.isascii()
        assert len(item.routing_key.encode()) <= 255
        assert item.routing_key.count(".") == 1
    message_event = result[0].event
    assert isinstance(message_event, MessageReceived)
    assert message_event.message_type == kind  # the event keeps what Meta sent


@pytest.mark.parametrize(
    "phone_number_id",
    ["106540352242922/deregister?", "../100000000000001", "1" * 33, "٣٣٣", "", " 1", "1e5"],
)
def test_a_phone_number_id_that_is_not_digits_is_kept_for_inspection(
    phone_number_id: str,
) -> None:
    change = messages_change(
        [text_message("15550001111", "hello")],
        statuses=[{"id": "wamid.S", "status": "read", "recipient_id": "1"}],
    )
    change["value"]["metadata"]["phone_number_id"] = phone_number_id
    result = route(webhook_body(change), received_at=1.0)
    assert not isinstance(result, Unclassified)
    assert [item.routing_key for item in result] == ["unknown"]
    assert isinstance(result[0].event, ChangeReceived)


def test_parse_rejects_what_is_not_json() -> None:
    for raw in (b"", b"{", b"\xff\xfe", b"{'a': 1}"):
        with pytest.raises(MalformedBody):
            parse(raw)


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ({"type": "text", "text": {"body": "hi"}}, "hi"),
        ({"type": "button", "button": {"text": "Yes", "payload": "y"}}, "Yes"),
        (
            {
                "type": "interactive",
                "interactive": {"type": "list_reply", "list_reply": {"id": "x", "title": "T"}},
            },
            "T",
        ),
        ({"type": "image", "image": {"id": "1", "caption": "look"}}, "look"),
        ({"type": "image", "image": {"id": "1"}}, None),
        ({"type": "reaction", "reaction": {"emoji": "x"}}, None),
    ],
)
def test_message_text(raw: dict[str, Any], text: str | None) -> None:
    assert message_text(raw) == text


def _echoes(*echoes: dict[str, Any]) -> dict[str, Any]:
    return {
        "field": "smb_message_echoes",
        "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "1065403"},
            "message_echoes": list(echoes),
        },
    }


def test_an_echo_from_the_business_app_is_its_own_event_keyed_by_the_user() -> None:
    echo = {
        "from": "15550783881",
        "to": "+16505551234",
        "id": "wamid.ECHO",
        "timestamp": "1739321024",
        "type": "text",
        "text": {"body": "Here's the info you requested!"},
    }
    result = route(webhook_body(_echoes(echo)), received_at=7.0)
    assert not isinstance(result, Unclassified)
    ((routed),) = result
    assert routed.routing_key == "echo.text"
    assert routed.correlation_id == "wamid.ECHO"
    assert routed.event == MessageEchoed(
        wamid="wamid.ECHO",
        phone_number_id="1065403",
        user="16505551234",
        message_type="text",
        text="Here's the info you requested!",
        timestamp=1739321024,
        received_at=7.0,
    )


def test_an_echo_without_a_recipient_is_kept_whole_for_inspection() -> None:
    broken = {"from": "15550783881", "id": "wamid.E", "timestamp": "1", "type": "text"}
    result = route(webhook_body(_echoes(broken)), received_at=1.0)
    assert not isinstance(result, Unclassified)
    assert [(r.routing_key, type(r.event).__name__) for r in result] == [
        ("unknown", "ChangeReceived")
    ]
