"""A bot author's side of the AI: ``@bot.tool`` (schema from type hints, arguments validated,
failures back to the model), ``bot.ai.answer`` from a handler, and testing both with
``BotHarness(bot, model=FakeModel(...))``."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, Field

from hiker.bot import (
    AINotConfigured,
    Bot,
    Conversation,
    Message,
    Reminder,
    Text,
    ToolContext,
    filters,
)
from hiker.conversation.ai.turn import TurnResult, TurnRunner
from hiker.core.actions import Buttons, Option
from hiker.core.requests import Handoff
from hiker.testing import BotHarness, FakeModel, calls_tool, calls_tools


class Stock(BaseModel):
    size: int
    pairs: int


def shop() -> Bot:
    bot = Bot()
    seen: list[Any] = []
    bot.seen = seen  # type: ignore[attr-defined]

    @bot.tool
    async def stock(
        size: Annotated[int, Field(ge=30, le=50, description="EU size")],
        colour: Literal["black", "white"] = "black",
    ) -> Stock:
        """How many pairs of a size are in stock."""
        seen.append(("stock", size, colour))
        return Stock(size=size, pairs=3 if colour == "black" else 0)

    @bot.tool(name="order_status", description="Where an order is.")
    def status(order: str, who: ToolContext) -> dict[str, str]:
        seen.append(("status", order, who.user, who.phone_number_id))
        return {"order": order, "status": "shipped"}

    @bot.tool
    async def broken() -> str:
        """Always fails."""
        raise LookupError("the stock service is down")

    @bot.on_text(startswith="shoes")
    async def shoes(msg: Message, conv: Conversation) -> Any:
        return await bot.ai.answer(msg, conv, extra_context="Free shipping today.")

    @bot.on_message(filters.audio)
    async def voice(msg: Message, conv: Conversation) -> Any:
        return await bot.ai.answer(msg, conv)

    return bot


def test_a_tools_schema_comes_from_its_name_docstring_and_type_hints() -> None:
    stock, status, broken = shop().tools
    assert stock.spec() == {
        "type": "function",
        "function": {
            "name": "stock",
            "description": "How many pairs of a size are in stock.",
            "parameters": {
                "type": "object",
                "properties": {
                    "size": {
                        "type": "integer",
                        "minimum": 30,
                        "maximum": 50,
                        "description": "EU size",
                    },
                    "colour": {"type": "string", "enum": ["black", "white"], "default": "black"},
                },
                "required": ["size"],
                "additionalProperties": False,
            },
        },
    }
    assert status.spec()["function"]["name"] == "order_status"
    assert status.spec()["function"]["description"] == "Where an order is."
    # The ToolContext parameter is Hiker's to fill, not the model's.
    assert list(status.parameters()["properties"]) == ["order"]
    assert broken.parameters() == {
        "type": "object",
        "properties": {},
        "additionalProperties": False,
    }


def test_a_tool_named_like_another_or_not_as_openai_allows_is_refused() -> None:
    bot = shop()
    with pytest.raises(TypeError, match="exists already"):
        bot.tool(name="handoff")(lambda: None)
    with pytest.raises(TypeError, match="exists already"):

        @bot.tool
        async def stock() -> None: ...

    with pytest.raises(TypeError, match="letters, digits"):
        bot.tool(name="look up")(lambda: None)
    with pytest.raises(TypeError, match="starts with _"):
        bot.tool(name="hidden")(lambda _hidden: None)
    with pytest.raises(TypeError, match="cannot read its type hints"):

        @bot.tool
        async def unknown(order: Order) -> None: ...  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(TypeError, match="passable by name"):

        @bot.tool
        async def everything(*args: int) -> None: ...


async def test_the_model_calls_an_authors_tools_and_reads_their_results() -> None:
    bot = shop()
    model = FakeModel(
        calls_tools(("stock", {"size": 42}), ("order_status", {"order": "A7"})),
        "Size 42: 3 pairs. Order A7 has shipped.",
    )
    async with BotHarness(bot, model=model, system_prompt="You sell shoes.") as chat:
        sent = await chat.send("shoes in 42? and my order A7")

    assert sent == [Text(body="Size 42: 3 pairs. Order A7 has shipped.")]
    assert bot.seen == [("stock", 42, "black"), ("status", "A7", chat.user, chat.phone_number_id)]  # type: ignore[attr-defined]
    assert model.requests[1].tool_results == [
        '{"size": 42, "pairs": 3}',
        '{"order": "A7", "status": "shipped"}',
    ]
    first = model.requests[0]
    assert first.tool_names == [
        "handoff",
        "send_buttons",
        "send_list",
        "remind",
        "stock",
        "order_status",
        "broken",
    ]
    assert first.contents("system") == ["You sell shoes.", "Free shipping today."]


async def test_invalid_arguments_and_failures_go_back_to_the_model_never_crash_the_turn() -> None:
    bot = shop()
    model = FakeModel(
        calls_tools(
            ("stock", {"size": 12}),
            ("stock", {"size": "forty", "colour": "red"}),
            ("stock", {"size": 42, "shoe": "boot"}),
            ("broken", {}),
        ),
        "Sorry, I cannot check the stock right now.",
    )
    async with BotHarness(bot, model=model) as chat:
        sent = await chat.send("shoes please")

    assert sent == [Text(body="Sorry, I cannot check the stock right now.")]
    assert bot.seen == []  # type: ignore[attr-defined]
    low, wrong, extra, broken = (json.loads(r)["error"] for r in model.requests[1].tool_results)
    assert "size: Input should be greater than or equal to 30" in low
    assert "size:" in wrong
    assert "colour:" in wrong
    assert "shoe: Extra inputs are not permitted" in extra
    assert broken == "the tool failed: LookupError: the stock service is down"


async def test_the_model_offers_buttons_through_a_handler() -> None:
    options = [{"id": "41", "title": "41"}, {"id": "42", "title": "42"}]
    model = FakeModel(calls_tool("send_buttons", body="Which size?", options=options), "")
    async with BotHarness(shop(), model=model) as chat:
        sent = await chat.send("shoes please")
    assert sent == [
        Buttons(
            body="Which size?", options=[Option(id="41", title="41"), Option(id="42", title="42")]
        )
    ]


async def test_the_handlers_turn_sees_the_history_without_the_message_itself() -> None:
    model = FakeModel("Black or white?", "3 pairs.")
    async with BotHarness(shop(), model=model, history_turns=5) as chat:
        await chat.send("shoes in 42")
        await chat.send("shoes black")
    assert [(m["role"], m["content"]) for m in model.requests[1].messages[1:]] == [
        ("user", "shoes in 42"),
        ("assistant", "Black or white?"),
        ("user", "shoes black"),
    ]


async def test_a_voice_note_to_a_handler_is_transcribed_by_the_model() -> None:
    model = FakeModel("We open at 9.", transcripts=["when do you open"])
    async with BotHarness(shop(), model=model) as chat:
        sent = await chat.send_voice(b"OggS-voice")
    assert sent == [Text(body="We open at 9.")]
    assert model.heard[0][0] == b"OggS-voice"
    assert model.requests[0].contents("user") == ["[voice note] when do you open"]


async def test_a_handoff_from_a_handler_is_returned_with_the_text() -> None:
    bot = Bot()
    answers: list[Any] = []

    @bot.on_message()
    async def anything(msg: Message, conv: Conversation) -> Any:
        answers.append(await bot.ai.answer(msg, conv))
        return answers[-1]

    model = FakeModel(
        calls_tools(
            ("handoff", {"reason": "angry"}), ("remind", {"after_minutes": 5, "note": "n"})
        ),
        "A colleague will answer you.",
    )
    async with BotHarness(bot, model=model) as chat:
        sent = await chat.send("I want a human")
    assert sent == [Text(body="A colleague will answer you.")]
    [answer] = answers
    assert answer[0] == Text(body="A colleague will answer you.")
    assert [type(item).__name__ for item in answer] == ["Text", "Remind", "Handoff"]
    assert answer[-1] == Handoff(minutes=30, reason="angry")


async def test_without_a_model_bot_ai_says_how_to_configure_one() -> None:
    bot = shop()
    assert not bot.ai.configured
    with pytest.raises(AINotConfigured, match="HIKER_AI_BASE_URL and HIKER_AI_MODEL"):
        async with BotHarness(bot) as chat:
            await chat.send("shoes please")


async def test_the_seam_conversation_attaches_a_runner_and_hears_each_result() -> None:
    bot = shop()
    heard: list[tuple[str, str, TurnResult]] = []

    async def on_result(phone_number_id: str, user: str, result: TurnResult) -> None:
        heard.append((phone_number_id, user, result))

    model = FakeModel("Hi!")
    bot.ai.attach(
        TurnRunner(model, tools=bot.tools), system_prompt="Be brief.", on_result=on_result
    )
    assert bot.ai.configured
    async with BotHarness(bot) as chat:  # no model of its own: the attached runner answers
        assert await chat.send("shoes") == [Text(body="Hi!")]
    [(phone_number_id, user, result)] = heard
    assert (phone_number_id, user) == (chat.phone_number_id, chat.user)
    assert result.calls == 1
    assert result.usage.total_tokens > 0
    bot.ai.detach()
    assert not bot.ai.configured


async def test_a_harness_leaves_the_bot_without_its_model() -> None:
    bot = shop()
    async with BotHarness(bot, model=FakeModel("x")):
        assert bot.ai.configured
    assert not bot.ai.configured


def test_answer_returns_what_a_handler_returns() -> None:
    result = TurnResult(text="Bye", handoff=Handoff(minutes=5, reason="r"))
    assert result.reply_actions() == [Text(body="Bye")]


async def test_a_reminder_the_model_set_comes_back_to_the_model_with_its_note() -> None:
    bot = shop()
    caught: list[str] = []

    @bot.on_reminder()
    async def everything_else(reminder: Reminder, conv: Conversation) -> Any:
        caught.append(reminder.key)
        return None

    model = FakeModel(
        calls_tool("remind", after_minutes=60, note="ask if size 42 fitted"),
        "I'll check in an hour.",
        "Did the size 42 fit?",
    )
    async with BotHarness(bot, model=model, idle_timeout_seconds=6 * 3600) as chat:
        assert await chat.send("shoes in 42") == [Text(body="I'll check in an hour.")]
        assert chat.waiting[0][1] == "ai:1"
        assert await chat.advance(minutes=59) == []
        assert await chat.advance(minutes=2) == [Text(body="Did the size 42 fit?")]

    follow_up = model.requests[2]
    assert "Your note: ask if size 42 fitted" in follow_up.contents("system")[-1]
    assert follow_up.contents("user") == ["shoes in 42"]
    assert follow_up.contents("assistant") == ["I'll check in an hour."]
    assert caught == []  # the bot's catch-all reminder handler never sees the model's own
