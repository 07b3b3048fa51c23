"""Every action, as the sender sends it, against Meta's own schema of the send endpoint.

The schema and Meta's example requests are read where they lie, beside this checkout
(``../shared/meta``) or at ``HIKER_TEST_META_SCHEMAS``; never copied into the project. Where
Meta's examples and its schema disagree, the API accepts what the examples show (the folder's
README lists the cases); those cases are checked against the examples instead.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from hiker.core.actions import (
    AnyAction,
    Audio,
    Buttons,
    Contact,
    ContactName,
    ContactPhone,
    Contacts,
    Document,
    Image,
    ListMenu,
    Location,
    MarkRead,
    Option,
    Reaction,
    Row,
    Section,
    Sticker,
    Template,
    Text,
    Video,
    answering,
)
from hiker.core.contracts import SendMessage
from hiker.sender.graph import action_payload

META = Path(
    os.environ.get("HIKER_TEST_META_SCHEMAS")
    or Path(__file__).resolve().parents[3] / "shared" / "meta"
)
TO = "15550001111"


def meta(name: str) -> Any:
    path = META / name
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"Meta's schemas missing at {META}")
        pytest.skip(f"Meta's schemas not found at {META} (set HIKER_TEST_META_SCHEMAS)")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def schema() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(meta("message.schema.json"))


@pytest.fixture(scope="module")
def examples() -> dict[str, dict[str, Any]]:
    loaded: dict[str, dict[str, Any]] = meta("send-examples.json")
    return loaded


ACTIONS: list[AnyAction] = [
    Text(body="hello to you too"),
    Text(body="see https://example.com", preview_url=True, reply_to="wamid.IN1"),
    Buttons(
        body="What would you like?",
        options=(Option(id="sizes", title="Sizes"), Option(id="hours", title="Hours")),
        header="Shop",
        footer="reply any time",
    ),
    ListMenu(
        body="Pick one",
        button="Items",
        sections=(
            Section(title="Fruit", rows=(Row(id="apple", title="Apple", description="Red"),)),
            Section(title="Veg", rows=(Row(id="leek", title="Leek"),)),
        ),
    ),
    Image(link="https://example.com/a.jpg", caption="A"),
    Image(id="1234567890"),
    Video(link="https://example.com/v.mp4", caption="V"),
    Audio(id="987654321"),
    Document(link="https://example.com/p.pdf", filename="p.pdf", caption="Prices"),
    Sticker(link="https://example.com/s.webp"),
    Contacts(
        contacts=(
            Contact(
                name=ContactName(formatted_name="Ana Diaz", first_name="Ana"),
                phones=(ContactPhone(phone="+15550002222", type="WORK"),),
            ),
        )
    ),
    Template(name="hello_world", language="en_US"),
    Template(
        name="order_ready",
        language="en_US",
        components=({"type": "body", "parameters": [{"type": "text", "text": "Ana"}]},),
    ),
    Reaction(emoji="👍", message_id="wamid.IN1"),
]


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.type)
def test_every_action_is_a_message_meta_accepts(
    action: AnyAction, schema: jsonschema.Draft202012Validator
) -> None:
    payload = action_payload(TO, action)
    errors = [e.message for e in schema.iter_errors(payload)]
    assert errors == [], json.dumps(payload)


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.type)
def test_every_message_carries_its_key_as_callback_data_and_stays_one_meta_accepts(
    action: AnyAction, schema: jsonschema.Draft202012Validator
) -> None:
    payload = action_payload(TO, action, callback_data="reply:wamid.IN1#2")
    assert payload["biz_opaque_callback_data"] == "reply:wamid.IN1#2"
    # The v23 schema (shared/meta) has no ``biz_opaque_callback_data``, a top-level string of
    # the send request in Meta's messages reference: the rest is checked against the schema.
    rest = {k: v for k, v in payload.items() if k != "biz_opaque_callback_data"}
    assert [e.message for e in schema.iter_errors(rest)] == [], json.dumps(payload)


def test_callback_data_past_metas_512_characters_or_on_a_receipt_is_left_out() -> None:
    assert "biz_opaque_callback_data" not in action_payload(
        TO, Text(body="x"), callback_data="k" * 513
    )
    assert (
        action_payload(TO, Text(body="x"), callback_data="k" * 512)["biz_opaque_callback_data"]
        == "k" * 512
    )
    receipt = action_payload(TO, MarkRead(message_id="wamid.X"), callback_data="key")
    assert "biz_opaque_callback_data" not in receipt


BSUID = "US.13491208655302741918"


@pytest.mark.parametrize("address", [BSUID, "US.ENT.11815799212886844830"])
@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.type)
def test_a_business_scoped_user_id_goes_in_recipient_never_in_to(
    action: AnyAction, address: str, schema: jsonschema.Draft202012Validator
) -> None:
    payload = action_payload(address, action)
    assert "to" not in payload
    assert payload["recipient"] == address
    # The schema predates ``recipient`` (shared/meta/README.md): read it as ``to``.
    as_schema_knows = {("to" if k == "recipient" else k): v for k, v in payload.items()}
    errors = [e.message for e in schema.iter_errors(as_schema_knows)]
    assert errors == [], json.dumps(payload)


def test_a_read_receipt_names_no_recipient_whoever_the_user_is() -> None:
    payload = action_payload(BSUID, MarkRead(message_id="wamid.X"))
    assert "to" not in payload
    assert "recipient" not in payload


def test_a_reply_goes_to_the_phone_number_when_the_message_carried_one() -> None:
    command = SendMessage(
        idempotency_key="k",
        phone_number_id="1",
        to=BSUID,
        wa_id="16505551234",
        actions=(Text(body="hi"),),
        kind="reply",
        correlation_id="c",
    )
    assert action_payload(command.address, command.actions[0])["to"] == "16505551234"
    assert (
        action_payload(command.model_copy(update={"wa_id": None}).address, Text(body="x"))[
            "recipient"
        ]
        == BSUID
    )


def test_a_location_is_sent_as_meta_examples_show_it(
    schema: jsonschema.Draft202012Validator, examples: dict[str, dict[str, Any]]
) -> None:
    # The schema wants strings for the coordinates; Meta's examples (and its API) use numbers.
    payload = action_payload(TO, Location(latitude=37.75, longitude=-122.42, name="META HQ"))
    example = examples["Send Location Message"]
    assert {k: type(v) for k, v in payload["location"].items()} == {
        k: type(v) for k, v in example["location"].items() if k in payload["location"]
    }
    as_schema_says = copy.deepcopy(payload)
    for name in ("latitude", "longitude"):
        as_schema_says["location"][name] = str(payload["location"][name])
    assert list(schema.iter_errors(as_schema_says)) == []


def test_a_read_receipt_with_typing_is_what_meta_example_shows(
    examples: dict[str, dict[str, Any]],
) -> None:
    # No branch of the schema describes it; the example is the reference.
    example = examples["Send typing indicator and read receipt"]
    payload = action_payload(TO, MarkRead(message_id=example["message_id"], typing=True))
    assert payload == example
    assert "typing_indicator" not in action_payload(TO, MarkRead(message_id="wamid.X"))


def test_a_quoted_reply_and_a_reaction_answer_the_message_they_reply_to() -> None:
    quoted = answering(Text(body="yes", quote=True), "wamid.IN7")
    assert action_payload(TO, quoted)["context"] == {"message_id": "wamid.IN7"}
    reaction = answering(Reaction(emoji="❤️"), "wamid.IN7")
    assert action_payload(TO, reaction)["reaction"]["message_id"] == "wamid.IN7"


def rows(count: int, section: int = 0) -> tuple[Row, ...]:
    return tuple(Row(id=f"{section}.{n}", title=f"row {n}") for n in range(count))


def options(*titles: str, ids: tuple[str, ...] | None = None) -> tuple[Option, ...]:
    return tuple(Option(id=(ids or titles)[n], title=t) for n, t in enumerate(titles))


REFUSED: list[tuple[Any, str]] = [
    (lambda: Buttons(body="b", options=options("a", "b", "c", "d")), "at most 3"),
    (lambda: Buttons(body="b", options=options("x" * 21)), "at most 20"),
    (lambda: Buttons(body="b", options=options("A", "B", ids=("a", "a"))), "distinct"),
    (lambda: Buttons(body="b", options=()), "at least 1"),
    (lambda: ListMenu(body="b", button="x" * 21, sections=(Section(rows=rows(1)),)), "at most 20"),
    (
        lambda: ListMenu(
            body="b",
            button="Go",
            sections=tuple(Section(title=f"S{n}", rows=rows(4, n)) for n in range(3)),
        ),
        "at most 10 rows",
    ),
    (
        lambda: ListMenu(
            body="b", button="Go", sections=(Section(rows=rows(1)), Section(rows=rows(1, 1)))
        ),
        "needs a title",
    ),
    (lambda: Row(id="a", title="x" * 25), "at most 24"),
    (lambda: Image(link="https://example.com/a.jpg", id="123"), "exactly one of link and id"),
    (lambda: Image(), "exactly one of link and id"),
    (lambda: Image(link="ftp://example.com/a.jpg"), "URL scheme"),
    (lambda: Document(link="http://example.com/p.pdf"), "Meta requires HTTPS for media links"),
    (lambda: Text(body=""), "at least 1"),
    (lambda: Location(latitude=91, longitude=0), "less than or equal to 90"),
]


@pytest.mark.parametrize(("build", "problem"), REFUSED)
def test_what_meta_would_refuse_is_refused_when_built(build: Any, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        build()


def test_a_command_published_before_replies_were_actions_still_reads() -> None:
    legacy_text = SendMessage.model_validate_json(
        json.dumps(
            {
                "idempotency_key": "reply:wamid.OLD",
                "phone_number_id": "1",
                "to": TO,
                "text": "hello to you too",
                "template": None,
                "kind": "reply",
                "correlation_id": "wamid.OLD",
                "origin_received_at": None,
            }
        )
    )
    assert legacy_text.actions == (Text(body="hello to you too"),)
    assert legacy_text.action_key(0) == "reply:wamid.OLD"  # the key it was sent under before
    legacy_template = SendMessage.model_validate(
        {
            "idempotency_key": "followup:wamid.OLD",
            "phone_number_id": "1",
            "to": TO,
            "template": {"name": "we_miss_you", "language": "en_US"},
            "kind": "followup",
            "correlation_id": "wamid.OLD",
        }
    )
    assert legacy_template.actions == (Template(name="we_miss_you", language="en_US"),)


def test_what_is_left_of_a_reply_keeps_each_actions_own_key() -> None:
    command = SendMessage(
        idempotency_key="reply:w",
        phone_number_id="1",
        to=TO,
        actions=(Text(body="a"), Text(body="b"), Text(body="c")),
        kind="reply",
        correlation_id="w",
    )
    assert [command.action_key(i) for i in range(3)] == ["reply:w", "reply:w#1", "reply:w#2"]
    rest = command.remainder(1)
    assert [a.body for a in rest.actions if isinstance(a, Text)] == ["b", "c"]
    assert [rest.action_key(i) for i in range(2)] == ["reply:w#1", "reply:w#2"]
    keyed = command.model_copy(update={"keys": ("read:w", "reply:w", "reply:w#1")})
    assert keyed.remainder(2).action_key(0) == "reply:w#1"
    with pytest.raises(ValidationError, match="name every action"):
        SendMessage.model_validate({**command.model_dump(), "keys": ["only-one"]})
