"""Every inbound kind Meta sends becomes its typed view, read as ingress hands it over.

The table runs over another project's corpus of real-shaped webhooks (read where it lies,
never copied; see test_webhook.py) plus the views' own edge cases.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from hiker.bot import Message
from hiker.bot.reading import message_of
from hiker.core.contracts import MessageReceived
from hiker.ingress.webhook import route
from tests.unit.test_webhook import CORPUS

# What the view of each kind must carry.
TYPED: dict[str, Callable[[Message], object]] = {
    "text": lambda m: m.text,
    "image": lambda m: m.image and m.image.mime_type and m.image.sha256,
    "video": lambda m: m.video and m.video.caption,
    "audio": lambda m: m.audio and m.audio.mime_type,
    "document": lambda m: m.document and m.document.filename,
    "sticker": lambda m: m.sticker and m.sticker.mime_type,
    "location": lambda m: m.location,
    "contacts": lambda m: m.contacts and all(c.name and c.phones for c in m.contacts),
    "interactive": lambda m: m.tap or m.flow or m.call_permission or m.context,
    "button": lambda m: m.tap and m.tap.kind == "template" and m.button_id,
    "reaction": lambda m: m.reaction and m.reaction.message_id,
    "order": lambda m: m.order and m.order.items,
    "system": lambda m: m.system and m.system.type,
    "unsupported": lambda m: m.errors and m.errors[0].code == 131051,
    "edit": lambda m: m.edited_id and m.edit and m.edit.image and m.edit.caption,
    "revoke": lambda m: m.revoked_id,
}


def views(body: dict[str, Any]) -> list[Message]:
    routed = route(with_digit_number_ids(body), received_at=1.0)
    assert isinstance(routed, list)
    return [message_of(r.event) for r in routed if isinstance(r.event, MessageReceived)]


def with_digit_number_ids(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with a placeholder phone number id (one corpus file writes
    ``<BUSINESS_PHONE_NUMBER_ID>``) made digits, as Meta's are: ingress keeps a change with
    another id for inspection, and its messages would have no view to check."""
    copied = json.loads(json.dumps(body))
    for entry in copied.get("entry", []):
        for change in entry.get("changes", []):
            metadata = change.get("value", {}).get("metadata")
            if isinstance(metadata, dict) and not str(metadata.get("phone_number_id")).isdigit():
                metadata["phone_number_id"] = "100000000000001"
    return copied


MESSAGES = [(name, view) for name, body in CORPUS for view in views(body)]


def test_the_corpus_has_every_kind_of_the_table() -> None:
    if not CORPUS:
        pytest.skip("webhook corpus not found (see test_webhook.py)")
    assert {view.kind for _, view in MESSAGES} == set(TYPED)


@pytest.mark.parametrize(("name", "view"), MESSAGES, ids=[name for name, _ in MESSAGES])
def test_every_inbound_kind_produces_its_typed_view(name: str, view: Message) -> None:
    assert view.kind in TYPED, f"{name}: no typed view for {view.kind!r}"
    assert TYPED[view.kind](view), f"{name}: the {view.kind} view lacks its part"
    assert view.id
    assert view.user.id
    assert view.raw


def named(name: str) -> Message:
    [view] = [view for case, view in MESSAGES if case == name]
    return view


@pytest.fixture(autouse=True)
def _corpus() -> None:
    if not CORPUS:
        pytest.skip("webhook corpus not found (see test_webhook.py)")


def test_the_user_carries_phone_and_profile_name() -> None:
    user = named("message:text").user
    # Meta's message names the user by BSUID beside the phone number: the BSUID keys them.
    assert (user.id, user.phone, user.name) == (
        "US.13491208655302741918",
        "972987654321",
        "Test Name",
    )
    raw = {"from_user_id": "US.1349", "id": "wamid.1", "timestamp": "1", "type": "text"}
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"changes": [{"field": "messages", "value": {
            "metadata": {"phone_number_id": "1"}, "messages": [{**raw, "text": {"body": "hi"}}]
        }}]}],
    }  # fmt: skip
    [bsuid_only] = views(body)  # a user who shares no phone number
    assert (bsuid_only.user.id, bsuid_only.user.phone) == ("US.1349", None)
    value = body["entry"][0]["changes"][0]["value"]
    value["contacts"] = [{"user_id": "US.1349", "profile": {"username": "@ana"}}]
    [named_user] = views(body)
    assert named_user.user.username == "@ana"


def test_taps_carry_the_id_the_bot_wrote_and_the_title_the_user_saw() -> None:
    button = named("callback_button:button")
    assert button.tap is not None
    assert button.tap.kind == "button"
    assert button.text == button.tap.title
    row = named("callback_selection:description")
    assert row.tap is not None
    assert row.tap.kind == "list"
    assert row.tap.description
    assert row.button_id == row.tap.id


def test_media_keep_what_a_download_needs() -> None:
    document = named("message:document").document
    assert document is not None
    assert (document.id, document.mime_type, document.filename, document.caption) == (
        "1234567890987654321",
        "application/pdf",
        "filename.pdf",
        "caption",
    )
    assert document.sha256
    voice = named("message:voice")
    assert voice.audio is not None
    assert voice.audio.voice
    assert named("message:animated_sticker").sticker.animated  # type: ignore[union-attr]
    assert named("message:media_with_url").image.url  # type: ignore[union-attr]


def test_context_reaction_order_and_referral() -> None:
    reply = named("message:reply").context
    assert reply is not None
    assert reply.message_id == "wamid.xyzxyz=="
    assert named("message:forwarded_many_times").context.frequently_forwarded  # type: ignore[union-attr]
    assert named("message:unreaction_no_emoji").reaction.emoji is None  # type: ignore[union-attr]
    assert named("message:unreaction_empty").reaction.emoji is None  # type: ignore[union-attr]
    order = named("message:order").order
    assert order is not None
    assert order.text is None
    assert next((i.product_retailer_id, i.quantity) for i in order.items) == ("HAMBURGER", 3)
    referral = named("message:referral").referral
    assert referral is not None
    assert referral.source_type
    assert referral.ctwa_clid
    flow = named("flow_completion:completion").flow
    assert flow is not None
    assert flow.response["delivery_rating"] == "4"


def test_a_field_of_an_unexpected_type_reads_as_absent() -> None:
    event = MessageReceived(
        wamid="wamid.1",
        phone_number_id="1",
        user="2",
        message_type="image",
        timestamp=1,
        received_at=1.0,
        raw={"type": "image", "image": {"id": 5, "caption": ["x"]}, "context": "nope"},
    )
    view = message_of(event)
    assert (view.image, view.context, view.text) == (None, None, None)
