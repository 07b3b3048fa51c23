"""One AI turn on a scripted model: the tool loop and its cap, the built-in tools (an invalid
call goes back to the model and the turn still ends valid), usage summed, the history trimmed
once on a context-length error, and the model's unavailability left to the engine."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hiker.conversation.ai.tools import REMINDER_KEY, is_ai_reminder
from hiker.conversation.ai.turn import (
    HANDOFF_TEXT,
    TurnInput,
    TurnRunner,
    build_turn_runner,
    split_text,
)
from hiker.conversation.state import Turn
from hiker.core.actions import Buttons, ListMenu, Option, Row, Section, Text
from hiker.core.ai_model import Completion, ContextTooLong, ModelUnavailable, ToolCall, Usage
from hiker.core.contracts import MessageReceived
from hiker.core.requests import Handoff, Remind
from hiker.core.settings.ai import AISettings
from hiker.testing import FakeModel, calls_tool, calls_tools


def received(text: str, wamid: str = "wamid.NEW1", **fields: Any) -> MessageReceived:
    return MessageReceived(
        wamid=wamid,
        phone_number_id="100000000000001",
        user="15550001111",
        message_type=fields.pop("message_type", "text"),
        text=text,
        timestamp=1_700_000_000,
        received_at=1_700_000_000.0,
        **fields,
    )


def turn_of(*texts: str, history: list[Turn] | None = None, **fields: Any) -> TurnInput:
    return TurnInput(
        fields.pop("system_prompt", "You sell shoes."),
        history or [],
        [received(text, f"wamid.NEW{i}") for i, text in enumerate(texts, 1)],
        **fields,
    )


def said(role: str, text: str, at: float) -> Turn:
    return Turn("in" if role == "user" else "out", f"reply:wamid.{at}", "text", text, at)


async def test_a_plain_answer_is_one_call_with_the_builtin_tools_offered() -> None:
    model = FakeModel(Completion("Size 42 is in stock.", usage=Usage(30, 7)))
    result = await TurnRunner(model).run(turn_of("do you have 42?"))

    assert result.text == "Size 42 is in stock."
    assert (result.calls, result.usage) == (1, Usage(30, 7))
    assert result.actions == []
    assert result.reminders == []
    assert result.handoff is None
    [request] = model.requests
    assert request.tool_names == ["handoff", "send_buttons", "send_list", "remind"]
    assert request.messages[0] == {"role": "system", "content": "You sell shoes."}
    assert request.messages[-1] == {"role": "user", "content": "do you have 42?"}


async def test_the_history_goes_in_order_before_the_new_messages() -> None:
    history = [said("user", "hi", 1), said("assistant", "Hello!", 2), said("user", "shoes?", 3)]
    model = FakeModel("Yes.")
    turn = turn_of("size 42", "in black", history=history, extra_context="VIP customer")
    await TurnRunner(model).run(turn)

    assert [(m["role"], m["content"]) for m in model.requests[0].messages] == [
        ("system", "You sell shoes."),
        ("system", "VIP customer"),
        ("user", "hi"),
        ("assistant", "Hello!"),
        ("user", "shoes?"),
        ("user", "size 42"),
        ("user", "in black"),
    ]


async def test_a_tool_round_sends_the_calls_and_their_results_back_in_openai_shapes() -> None:
    model = FakeModel(
        Completion(
            "Let me offer the sizes.",
            (ToolCall("call_a", "send_buttons", json.dumps(_buttons("Which size?", "41", "42"))),),
            Usage(10, 5),
        ),
        Completion("", usage=Usage(20, 1)),
    )
    result = await TurnRunner(model).run(turn_of("sizes?"))

    assert result.actions == [
        Buttons(
            body="Which size?", options=[Option(id="41", title="41"), Option(id="42", title="42")]
        )
    ]
    assert result.text == ""
    assert result.reply_actions() == result.actions
    assert (result.calls, result.usage) == (2, Usage(30, 6))
    assert result.tools_called == ["send_buttons"]
    second = model.requests[1].messages
    assert second[-2] == {
        "role": "assistant",
        "content": "Let me offer the sizes.",
        "tool_calls": [
            {
                "id": "call_a",
                "type": "function",
                "function": {
                    "name": "send_buttons",
                    "arguments": json.dumps(_buttons("Which size?", "41", "42")),
                },
            }
        ],
    }
    assert second[-1]["role"] == "tool"
    assert second[-1]["tool_call_id"] == "call_a"
    assert "error" not in json.loads(json.dumps(second[-1]["content"]))


async def test_a_bad_send_buttons_goes_back_as_a_tool_error_and_the_turn_ends_valid() -> None:
    too_long = "Extra large with wide fit"  # 25 characters: Meta takes 20
    model = FakeModel(
        calls_tool("send_buttons", body="Which size?", options=[{"id": "xl", "title": too_long}]),
        calls_tool("send_buttons", body="Which size?", options=[{"id": "xl", "title": "XL wide"}]),
        "",
    )
    result = await TurnRunner(model).run(turn_of("sizes?"))

    [error] = model.requests[1].tool_results
    problem = json.loads(error)["error"]
    assert "options.0.title" in problem
    assert "at most 20 characters" in problem
    assert result.actions == [
        Buttons(body="Which size?", options=[Option(id="xl", title="XL wide")])
    ]
    assert result.calls == 3
    assert result.tools_called == ["send_buttons", "send_buttons"]


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (
            {"body": "Pick", "options": [{"id": str(i), "title": str(i)} for i in range(4)]},
            "at most 3",
        ),
        (
            {"body": "Pick", "options": [{"id": "a", "title": "A"}, {"id": "a", "title": "B"}]},
            "button ids",
        ),
        ({"body": "", "options": [{"id": "a", "title": "A"}]}, "body"),
        ({"body": "Pick"}, "options"),
        ("{not json", "not valid JSON"),
    ],
)
async def test_what_is_wrong_with_a_buttons_call_is_said(arguments: Any, says: str) -> None:
    model = FakeModel(calls_tools(("send_buttons", arguments)), "Sorry, tell me your size.")
    result = await TurnRunner(model).run(turn_of("sizes?"))

    [error] = model.requests[1].tool_results
    assert says in json.loads(error)["error"]
    assert result.actions == []
    assert result.text == "Sorry, tell me your size."


async def test_send_list_takes_rows_or_sections_within_metas_limits() -> None:
    rows = [{"id": f"r{i}", "title": f"Row {i}", "description": "d"} for i in range(3)]
    model = FakeModel(
        calls_tools(
            ("send_list", {"body": "Pick one", "button": "Open", "rows": rows}),
            (
                "send_list",
                {"body": "Pick", "button": "Open", "rows": [{"id": "x", "title": "y" * 25}]},
            ),
            ("send_list", {"body": "Pick", "button": "Open"}),
        ),
        "",
    )
    result = await TurnRunner(model).run(turn_of("menu"))

    assert result.actions == [
        ListMenu(
            body="Pick one",
            button="Open",
            sections=[
                Section(rows=[Row(id=f"r{i}", title=f"Row {i}", description="d") for i in range(3)])
            ],
        )
    ]
    ok, too_long, neither = model.requests[1].tool_results
    assert "error" not in ok
    assert "at most 24 characters" in json.loads(too_long)["error"]
    assert "either rows" in json.loads(neither)["error"]


async def test_the_round_cap_ends_with_a_call_without_tools() -> None:
    looping = [calls_tool("remind", after_minutes=5, note=f"n{i}") for i in range(2)]
    model = FakeModel(*looping, Completion("Done.", (ToolCall("c", "remind", "{}"),)))
    result = await TurnRunner(model, max_tool_rounds=2).run(turn_of("remind me"))

    assert [len(r.tools) for r in model.requests] == [4, 4, 0]
    assert result.text == "Done."
    assert result.calls == 3
    assert [r.data["note"] for r in result.reminders] == ["n0", "n1"]


async def test_handoff_hands_over_and_the_user_is_told() -> None:
    model = FakeModel(calls_tool("handoff", reason="wants a refund"), "")
    result = await TurnRunner(model, handoff_minutes=45).run(turn_of("I want a human"))

    assert result.handoff == Handoff(minutes=45, reason="wants a refund")
    assert result.text == HANDOFF_TEXT
    assert result.reply_actions() == [Text(body=HANDOFF_TEXT)]
    assert "a person will answer" in model.requests[1].tool_results[0]

    model = FakeModel(calls_tool("handoff", reason="r" * 500), "A colleague will write to you.")
    result = await TurnRunner(model).run(turn_of("human please"))
    assert result.text == "A colleague will write to you."
    assert result.handoff is not None
    assert len(result.handoff.reason) == 200


async def test_remind_sets_numbered_ai_reminders_with_the_note() -> None:
    model = FakeModel(
        calls_tools(
            ("remind", {"after_minutes": 60, "note": "ask about the fit"}),
            ("remind", {"after_minutes": 1440, "note": "sale starts", "keep": True}),
            ("remind", {"after_minutes": 0.1, "note": "too soon"}),
            ("remind", {"note": "when?"}),
        ),
        "I'll check back.",
    )
    result = await TurnRunner(model).run(turn_of("remind me tomorrow"))

    assert result.reminders == [
        Remind(after_seconds=3600, key=f"{REMINDER_KEY}:1", data={"note": "ask about the fit"}),
        Remind(
            after_seconds=86400, key=f"{REMINDER_KEY}:2", data={"note": "sale starts"}, keep=True
        ),
    ]
    assert all(is_ai_reminder(r.key) for r in result.reminders)
    assert not is_ai_reminder("check")
    _, _, too_soon, missing = model.requests[1].tool_results
    assert "between 1 and" in too_soon
    assert "after_minutes" in missing


async def test_an_unknown_tool_goes_back_to_the_model() -> None:
    model = FakeModel(calls_tool("refund", amount=5), "I cannot refund, sorry.")
    result = await TurnRunner(model).run(turn_of("refund"))

    assert "no tool 'refund'" in model.requests[1].tool_results[0]
    assert result.text == "I cannot refund, sorry."


async def test_a_context_length_error_trims_the_older_history_once() -> None:
    history = [said("user" if i % 2 == 0 else "assistant", f"t{i}", i) for i in range(6)]
    model = FakeModel(ContextTooLong("too long"), "Short answer.")
    result = await TurnRunner(model).run(turn_of("now", history=history))

    assert result.text == "Short answer."
    assert result.calls == 2
    first, second = (r.contents("user") + r.contents("assistant") for r in model.requests)
    assert {"t0", "t1", "t2"} <= set(first)
    assert not {"t0", "t1", "t2"} & set(second)
    assert {"t3", "t4", "t5", "now"} <= set(second)

    model = FakeModel(ContextTooLong("too long"), ContextTooLong("still"))
    with pytest.raises(ContextTooLong):
        await TurnRunner(model).run(turn_of("now", history=history))
    with pytest.raises(ContextTooLong):  # nothing to trim
        await TurnRunner(FakeModel(ContextTooLong("x"))).run(turn_of("now"))


async def test_a_context_length_error_in_a_later_round_keeps_the_tool_results() -> None:
    history = [said("user", f"t{i}", i) for i in range(4)]
    model = FakeModel(calls_tool("remind", after_minutes=5, note="n"), ContextTooLong("x"), "ok")
    result = await TurnRunner(model).run(turn_of("now", history=history))

    assert result.text == "ok"
    assert len(result.reminders) == 1
    assert result.calls == 3
    assert model.requests[2].tool_results == model.requests[1].tool_results


async def test_the_model_being_away_propagates_for_the_engine_to_retry() -> None:
    model = FakeModel(
        calls_tool("handoff", reason="x"), ModelUnavailable("503", outcome="server_error")
    )
    with pytest.raises(ModelUnavailable):
        await TurnRunner(model).run(turn_of("hello"))


def test_the_factory_takes_the_settings() -> None:
    settings = AISettings.model_construct(
        ai_max_tool_rounds=2, ai_vision=True, ai_transcribe_model="whisper-1"
    )
    runner = build_turn_runner(FakeModel(), settings, handoff_minutes=10)
    assert [t.name for t in runner.tools] == ["handoff", "send_buttons", "send_list", "remind"]
    assert (runner._max_tool_rounds, runner._vision, runner._transcribe) == (2, True, True)


def test_a_long_text_is_split_within_metas_limit() -> None:
    text = ("word " * 300 + "\n\n") * 5
    parts = split_text(text, 4096)
    assert all(len(p) <= 4096 for p in parts)
    assert len(parts) == 2
    assert " ".join(parts).split() == text.split()
    assert split_text("   ") == []
    assert split_text("x" * 5000, 4096) == ["x" * 4096, "x" * 904]


def _buttons(body: str, *titles: str) -> dict[str, Any]:
    return {"body": body, "options": [{"id": t, "title": t} for t in titles]}


@given(st.text(alphabet=st.sampled_from("ab \n"), max_size=400), st.integers(10, 60))
def test_split_text_keeps_every_word_within_the_limit(text: str, limit: int) -> None:
    parts = split_text(text, limit)
    assert all(0 < len(part) <= limit for part in parts)
    # Nothing but the whitespace at a cut is lost, and nothing moves.
    assert "".join(parts).replace(" ", "").replace("\n", "") == text.replace(" ", "").replace(
        "\n", ""
    )


async def test_a_fake_model_out_of_answers_says_so() -> None:
    model = FakeModel("one")
    await TurnRunner(model).run(turn_of("a"))
    with pytest.raises(AssertionError, match="call 2 has no scripted answer left"):
        await TurnRunner(model).run(turn_of("b"))
