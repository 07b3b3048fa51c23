"""The harness hands a bot each inbound kind as ingress would, and time as the queues would."""

from __future__ import annotations

from typing import Any

import pytest

from hiker.bot import Bot, Buttons, Conversation, Message, Option, Remind, Reminder, Text
from hiker.testing import BotHarness


def recorder() -> tuple[Bot, list[Message]]:
    bot = Bot()
    seen: list[Message] = []

    @bot.on_message()
    async def record(msg: Message, conv: Conversation) -> Any:
        seen.append(msg)
        return None

    return bot, seen


async def test_every_input_arrives_as_its_typed_view() -> None:
    bot, seen = recorder()
    async with BotHarness(bot, name="Ana") as chat:
        await chat.send("hi", reply_to="wamid.OUT1")
        await chat.tap("b1", "Yes")
        await chat.choose("r1", "Row")
        await chat.tap_template("stop", "Stop")
        await chat.send_image(b"png", caption="c")
        await chat.send_video()
        await chat.send_voice()
        await chat.send_document(filename="a.pdf")
        await chat.send_sticker(animated=True)
        await chat.send_location(1.5, 2.5, name="Here")
        await chat.send_contact("Bo", "+1 555")
        await chat.react("❤")
        await chat.send_order([("tee", 2, 15.0, "EUR")])
        # A change of the user's ids (user_changed_number...) moves the conversation and never
        # reaches the bot (issue 21); other notices do.
        await chat.receive({"type": "system", "system": {"type": "customer_identity_changed"}})
        await chat.receive({"type": "unsupported", "errors": [{"code": 131051}]})
    assert [m.kind for m in seen] == [
        "text", "interactive", "interactive", "button", "image", "video", "audio", "document",
        "sticker", "location", "contacts", "reaction", "order", "system", "unsupported",
    ]  # fmt: skip
    text, button, row, template, image, _, voice, document, sticker, place, card = seen[:11]
    assert (text.text, text.context and text.context.message_id) == ("hi", "wamid.OUT1")
    assert (text.user.id, text.user.phone, text.user.name) == (chat.user, chat.user, "Ana")
    assert (button.tap and button.tap.kind, button.button_id, button.text) == (
        "button",
        "b1",
        "Yes",
    )
    assert (row.tap and row.tap.kind, row.button_id) == ("list", "r1")
    assert (template.tap and template.tap.kind, template.button_id) == ("template", "stop")
    assert image.image is not None
    assert (image.image.caption, image.image.mime_type) == ("c", "image/jpeg")
    assert voice.audio is not None
    assert voice.audio.voice
    assert document.document is not None
    assert document.document.filename == "a.pdf"
    assert sticker.sticker is not None
    assert sticker.sticker.animated
    assert place.location is not None
    assert (place.location.latitude, place.location.name) == (1.5, "Here")
    assert [c.name for c in card.contacts] == ["Bo"]
    assert seen[11].reaction is not None
    assert seen[11].reaction.emoji == "❤"
    assert seen[12].order is not None
    assert seen[12].order.items[0].quantity == 2
    assert seen[14].errors[0].code == 131051


async def test_a_change_of_the_users_ids_never_reaches_the_bot() -> None:
    bot, seen = recorder()
    change = {"type": "user_changed_user_id", "user_id": "US.2", "previous_user_id": "US.1"}
    async with BotHarness(bot, name="Ana") as chat:
        await chat.receive({"type": "system", "system": change})
    assert seen == []


async def test_a_tap_reads_the_title_the_bot_gave_the_button() -> None:
    bot = Bot()
    seen: list[str | None] = []

    @bot.on_text("menu")
    async def menu(msg: Message, conv: Conversation) -> Any:
        return Buttons(body="Sure?", options=[Option(id="yes", title="Yes please")])

    @bot.on_button()
    async def tapped(msg: Message, conv: Conversation) -> Any:
        seen.append(msg.text)
        return None

    async with BotHarness(bot) as chat:
        await chat.tap("yes")  # before the bot showed it: the id stands in
        await chat.send("menu")
        await chat.tap("yes")
    assert seen == ["yes", "Yes please"]


async def test_an_object_ingress_would_refuse_is_refused() -> None:
    bot, _ = recorder()
    async with BotHarness(bot) as chat:
        with pytest.raises(ValueError, match="not a message object"):
            await chat.receive({"type": "text", "timestamp": "yesterday"})


async def test_time_fires_timers_in_due_order_and_closes_the_window() -> None:
    bot = Bot()

    @bot.on_text("later")
    async def later(msg: Message, conv: Conversation) -> Any:
        return [Remind(after_seconds=20 * 60, key="a"), Remind(after_seconds=25 * 3600, key="b")]

    @bot.on_reminder()
    async def remind(reminder: Reminder, conv: Conversation) -> Any:
        return Text(body=f"reminder {reminder.key}")

    async with BotHarness(bot) as chat:
        assert await chat.send("later") == []
        assert await chat.advance(hours=1) == [
            Text(body="are you there"),  # the idle follow-up at 10 minutes
            Text(body="reminder a"),
        ]
        # A day later the 24-hour window has closed: a text would be refused by Meta.
        assert await chat.advance(days=1) == []
        assert [turn.text for turn in await chat.history()] == [
            "later",
            "are you there",
            "reminder a",
        ]
        assert chat.waiting == []
