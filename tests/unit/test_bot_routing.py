"""A bot's routes: tried in the order declared, filters composed, the rest to the rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hiker.bot import (
    Bot,
    Conversation,
    Handoff,
    Message,
    Reaction,
    Remind,
    Reminder,
    Skip,
    Text,
    filters,
    load_bot,
)
from hiker.bot.routing import _labelled
from hiker.conversation.responder import as_responder, decided, reminded
from hiker.conversation.state import Turn
from hiker.core.contracts import MessageReceived
from hiker.core.settings import ConfigError
from hiker.testing import BotHarness


def texts(sent: list[Any]) -> list[str]:
    return [a.body for a in sent if isinstance(a, Text)]


def shop() -> Bot:
    bot = Bot()

    @bot.on_text("menu")
    async def menu(msg: Message, conv: Conversation) -> Any:
        return Text(body="the menu")

    @bot.on_text(regex=r"^order #(\d+)$")
    async def order(msg: Message, conv: Conversation) -> Any:
        return Text(body=f"order {msg.text}")

    @bot.on_text(startswith="track")
    async def track(msg: Message, conv: Conversation) -> Any:
        return Text(body="tracking")

    @bot.on_message(filters.image & filters.caption_contains("invoice"))
    async def invoice(msg: Message, conv: Conversation) -> Any:
        assert msg.image is not None
        conv.state["last_invoice"] = msg.image.sha256
        return [Text(body="Got it"), Remind(after_seconds=3600, key="check")]

    @bot.on_message(filters.image | filters.video)
    async def media(msg: Message, conv: Conversation) -> Any:
        return Reaction(emoji="👍")

    @bot.on_message(filters.text & ~filters.text_is("hello"))
    async def shout(msg: Message, conv: Conversation) -> Any:
        if msg.text == "pass":
            return Skip
        return Text(body=(msg.text or "").upper())

    @bot.on_reminder("check")
    async def check(reminder: Reminder, conv: Conversation) -> Any:
        return Text(body=f"checked {conv.state['last_invoice'][:4]}")

    return bot


async def test_the_first_handler_whose_filter_accepts_answers() -> None:
    async with BotHarness(shop()) as chat:
        assert texts(await chat.send("  MENU ")) == ["the menu"]
        assert texts(await chat.send("order #12")) == ["order order #12"]
        assert texts(await chat.send("track my parcel")) == ["tracking"]
        assert texts(await chat.send("tracking")) == ["TRACKING"]  # a word, not a prefix
        assert texts(await chat.send("menus")) == ["MENUS"]


async def test_filters_compose_and_media_carry_their_digest() -> None:
    async with BotHarness(shop()) as chat:
        sent = await chat.send_image(b"scan", caption="Invoice 7")
        assert texts(sent) == ["Got it"]
        assert chat.state["last_invoice"]
        assert await chat.send_image(b"cat") == [Reaction(emoji="👍", message_id=chat.last_id)]
        assert await chat.send_video(caption="invoice") == [
            Reaction(emoji="👍", message_id=chat.last_id)
        ]


async def test_what_no_handler_takes_goes_to_the_rules_and_skip_passes_on() -> None:
    async with BotHarness(shop()) as chat:
        assert texts(await chat.send("hello")) == ["hello to you too"]
        assert texts(await chat.send("pass")) == []  # skipped, and no rule for it
        assert await chat.send_location(52.5, 13.4) == []


async def test_a_reminder_comes_back_to_the_handler_of_its_key() -> None:
    async with BotHarness(shop(), idle_timeout_seconds=7200) as chat:
        await chat.send_image(b"scan", caption="invoice")
        assert [key for _, key in chat.waiting] == ["check", None]
        assert texts(await chat.advance(minutes=59)) == []
        assert texts(await chat.advance(minutes=2)) == [f"checked {chat.state['last_invoice'][:4]}"]


async def test_the_replies_metric_names_the_handler_that_answered() -> None:
    async with BotHarness(shop()) as chat:
        await chat.send("menu")
        await chat.send("hello")
        value = chat.registry.get_sample_value
        assert value("hiker_replies_emitted_total", {"rule": "menu"}) == 1
        assert value("hiker_replies_emitted_total", {"rule": "hello"}) == 1


def test_a_handler_must_be_async_and_on_text_takes_one_way_to_match() -> None:
    bot = Bot()
    with pytest.raises(TypeError, match="async def"):
        bot.on_text("x")(lambda msg, conv: None)  # type: ignore[type-var]
    with pytest.raises(TypeError, match="one of"):
        bot.on_text("x", regex="y")


bot = shop()


def make_bot() -> Bot:
    return shop()


def not_a_bot() -> object:
    return object()


def test_hiker_bot_names_a_bot_or_a_factory() -> None:
    assert load_bot("tests.unit.test_bot_routing:bot") is bot
    assert isinstance(load_bot("tests.unit.test_bot_routing:make_bot"), Bot)
    with pytest.raises(ConfigError, match=r"HIKER_BOT .* names neither a Bot"):
        load_bot("tests.unit.test_bot_routing:not_a_bot")
    with pytest.raises(ConfigError, match=r"HIKER_BOT .* cannot be loaded"):
        load_bot("tests.unit.nowhere:bot")


def test_a_bot_whose_code_fails_on_import_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = "from hiker.bot import Bot\nbot = Bot()\n@bot.on_text('x')\ndef sync(msg, conv): ...\n"
    (tmp_path / "broken_bot.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match="cannot be loaded: a bot handler is an async def"):
        load_bot("broken_bot:bot")


class NoHistory:
    async def history(self, phone_number_id: str, user: str, limit: int) -> list[Turn]:
        return []


async def test_a_bot_is_a_responder_falling_back_to_its_own_rules_file(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {name: ping, match: exact, pattern: ping, reply: pong}\n")
    standalone = Bot(rules=rules)

    @standalone.on_reminder("later")
    async def later(reminder: Reminder, conv: Conversation) -> Any:
        return Text(body=f"later {reminder.data['n']}")

    responder = as_responder(standalone)
    assert reminded(responder) is standalone
    conversation = Conversation("1", "2", {}, NoHistory())
    event = MessageReceived(
        wamid="wamid.1",
        phone_number_id="1",
        user="2",
        message_type="text",
        text="ping",
        timestamp=1,
        received_at=1.0,
        raw={"type": "text", "text": {"body": "ping"}},
    )
    answer = decided(await responder.respond(event, conversation))
    assert answer.reply is not None
    assert answer.reply.actions == (Text(body="pong"),)
    due = Reminder("later", {"n": 3}, "wamid.1", 2.0)
    reminder_answer = decided(await standalone.on_reminder(due, conversation))
    assert reminder_answer.reply is not None
    assert reminder_answer.reply.actions == (Text(body="later 3"),)
    assert decided(await standalone.on_reminder(Reminder("other", {}, "w", 2.0), conversation)) == (
        decided(None)
    )


def test_a_handler_that_hands_over_keeps_its_reply_and_the_handoff() -> None:
    decided = _labelled("refund", [Text(body="Passing you on"), Handoff(minutes=5, reason="r")])
    assert decided.reply is not None
    assert (decided.reply.rule, decided.reply.text) == ("refund", "Passing you on")
    assert decided.handing_off == Handoff(minutes=5, reason="r")
