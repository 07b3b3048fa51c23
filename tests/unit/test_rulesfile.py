from __future__ import annotations

from pathlib import Path

import pytest

from hiker.conversation.rulesfile import RulesFileError, default_rulebook, parse_rules
from hiker.conversation.rulesource import RuleSource
from hiker.core.actions import Buttons, Document, ListMenu, Reaction, Template, Text
from hiker.core.contracts import MessageReceived
from hiker.core.requests import Handoff

BASE = default_rulebook("are you there", 600)

EXAMPLE = """\
rules:
  - {name: hello, match: exact, pattern: hello, reply: hello to you too}
  - name: echo
    match: prefix
    pattern: echo
    reply: "you said: {rest}"
default_reply: sorry, I did not get that
followup:
  text: anyone?
numbers:
  "111":
    followup:
      idle_timeout_seconds: 30
      template: {name: hello_world, language: en_US}
"""


def test_example_file() -> None:
    book = parse_rules(EXAMPLE, "rules.yaml", BASE)
    assert [r.name for r in book.rules] == ["hello", "echo"]
    reply = book.reply_to("ECHO Hi")
    assert reply is not None
    assert reply.text == "you said: Hi"
    default = book.reply_to("what?")
    assert default is not None
    assert (default.rule, default.text) == ("default", "sorry, I did not get that")
    assert book.reply_to(None) is None  # an image without caption gets no default reply
    assert book.policy("999").followup_text == "anyone?"
    assert book.policy("999").idle_timeout_seconds == 600
    special = book.policy("111")
    assert (special.followup_text, special.idle_timeout_seconds) == ("anyone?", 30)
    assert special.followup_template == Template(name="hello_world", language="en_US")


def test_empty_file_keeps_the_built_in_rules() -> None:
    book = parse_rules("", "rules.yaml", BASE)
    reply = book.reply_to("hello")
    assert reply is not None
    assert reply.text == "hello to you too"
    assert book.default_reply == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "rules:\n  - {name: a, match: fuzzy, pattern: x, reply: y}\n",
            "rules.yaml:2: rules[0].match",
        ),
        (
            "rules:\n  - name: a\n    match: exact\n    pattern: x\n",
            "rules.yaml:2: rules[0].reply: Field required",
        ),
        (
            "followup:\n  text: hi\n  idle_timeout: 5\n",
            "rules.yaml:3: followup.idle_timeout: Extra inputs",
        ),
        (
            "numbers:\n  '1':\n    followup:\n      idle_timeout_seconds: -5\n",
            "rules.yaml:4: numbers.1.followup.idle_timeout_seconds",
        ),
        (
            "rules:\n  - {name: a, match: exact, pattern: x, reply: 'hi {name}'}\n",
            "rules.yaml:2: rules[0].reply",
        ),
        ("rules: [\n", "rules.yaml:2: not valid YAML"),
        (
            "rules:\n  - name: a\n    match: exact\n    pattern: x\n    reply: y\n"
            "    handoff: {minutes: 0}\n",
            "rules.yaml:6: rules[0].handoff.minutes",
        ),
    ],
)
def test_errors_name_file_line_and_problem(text: str, expected: str) -> None:
    with pytest.raises(RulesFileError) as caught:
        parse_rules(text, "rules.yaml", BASE)
    assert expected in str(caught.value)


def test_source_reloads_on_change_and_keeps_the_last_good_rules(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - {name: a, match: exact, pattern: ping, reply: pong}\n")
    outcomes: list[str] = []
    source = RuleSource(BASE, path, on_reload=outcomes.append)
    assert source.reload_if_changed() is False
    path.write_text("rules:\n  - {name: a, match: exact, pattern: ping, reply: PONG!}\n")
    assert source.reload_if_changed() is True
    reply = source.current.reply_to("ping")
    assert reply is not None
    assert reply.text == "PONG!"
    path.write_text("rules:\n  - {name: a, match: nope}\n")
    assert source.reload_if_changed() is False
    reply = source.current.reply_to("ping")
    assert reply is not None
    assert reply.text == "PONG!"
    assert outcomes == ["applied", "rejected"]


def test_invalid_file_at_start_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules: 5\n")
    with pytest.raises(RulesFileError, match=r"rules.yaml:1: rules"):
        RuleSource(BASE, path)
    with pytest.raises(RulesFileError, match="cannot be read"):
        RuleSource(BASE, tmp_path / "missing.yaml")


RICH = """\
rules:
  - {name: menu, match: exact, pattern: menu,
     reply: {buttons: {body: "What would you like?", options: [{id: sizes, title: Sizes}, {id: hours, title: Hours}]}}}
  - {name: sizes, match: button, pattern: sizes, reply: "S, M, L"}
  - {name: photo, match: exact, pattern: photo, reply: {image: {link: "https://example.com/a.jpg", caption: "A"}}}
  - {name: docs, match: exact, pattern: docs,
     reply: [{text: "Here is the price list"}, {document: {link: "https://example.com/p.pdf", filename: "p.pdf"}}]}
  - {name: catalog, match: exact, pattern: catalog,
     reply: {list: {body: "Pick one", button: "Items", sections: [{title: Fruit, rows: [{id: apple, title: Apple, description: Red}]}]}}}
  - {name: pics, match: type, pattern: image, reply: {reaction: {emoji: "👍"}}}
  - {name: quote, match: prefix, pattern: say, reply: {text: {body: "you said {rest}", quote: true}}}
"""  # noqa: E501 - docs/replies.md's example, line for line


def received(text: str | None, kind: str = "text", reply_id: str | None = None) -> MessageReceived:
    return MessageReceived(
        wamid="wamid.IN1",
        phone_number_id="1",
        user="2",
        message_type=kind,
        text=text,
        reply_id=reply_id,
        timestamp=1,
        received_at=1.0,
    )


def test_rich_replies_buttons_lists_media_reactions_and_matches_by_tap_and_type() -> None:
    book = parse_rules(RICH, "rules.yaml", BASE)
    menu = book.reply_to(received("Menu"))
    assert menu is not None
    [buttons] = menu.actions
    assert isinstance(buttons, Buttons)
    assert [(o.id, o.title) for o in buttons.options] == [("sizes", "Sizes"), ("hours", "Hours")]
    tapped = book.reply_to(received("Sizes", kind="interactive", reply_id="sizes"))
    assert tapped is not None
    assert (tapped.rule, tapped.text) == ("sizes", "S, M, L")
    docs = book.reply_to(received("docs"))
    assert docs is not None
    assert [type(a) for a in docs.actions] == [Text, Document]
    catalog = book.reply_to(received("catalog"))
    assert catalog is not None
    assert isinstance(catalog.actions[0], ListMenu)
    pics = book.reply_to(received(None, kind="image"))
    assert pics is not None
    assert pics.actions == (Reaction(emoji="👍"),)
    said = book.reply_to(received("say Hi There"))
    assert said is not None
    assert said.actions == (Text(body="you said Hi There", quote=True),)
    assert book.reply_to(received(None, kind="audio")) is None


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            "{buttons: {body: b, options: [{id: a, title: A}, {id: b, title: B}, "
            "{id: c, title: C}, {id: d, title: D}]}}",
            "rules.yaml:3: rules[0].reply.buttons.options: at most 3 (Meta's limit), not 4",
        ),
        (
            "{buttons: {body: b, options: [{id: a, title: This title is far too long}]}}",
            "rules.yaml:3: rules[0].reply.buttons.options[0].title: at most 20 characters "
            "(Meta's limit), not 26",
        ),
        ("{carousel: {body: b}}", "rules.yaml:3: rules[0].reply: unknown action 'carousel'"),
        ("{text: hi, image: {id: '1'}}", "rules.yaml:3: rules[0].reply: one action per entry"),
        (
            "[hi, {image: {caption: x}}]",
            "rules.yaml:3: rules[0].reply[1].image: give exactly one of link and id",
        ),
        (
            "{image: {link: 'http://example.com/a.jpg'}}",
            "rules.yaml:3: rules[0].reply.image.link: must be an https:// URL: Meta requires "
            "HTTPS for media links",
        ),
    ],
)
def test_a_reply_meta_would_refuse_names_file_line_and_problem(reply: str, expected: str) -> None:
    text = f"rules:\n  - name: a\n    reply: {reply}\n    match: exact\n    pattern: x\n"
    with pytest.raises(RulesFileError) as caught:
        parse_rules(text, "rules.yaml", BASE)
    assert expected in str(caught.value)


def test_the_line_of_a_problem_deep_in_a_block_reply() -> None:
    text = """\
rules:
  - name: menu
    match: exact
    pattern: menu
    reply:
      buttons:
        body: What would you like?
        options:
          - {id: sizes, title: Sizes}
          - {id: hours, title: Our opening hours today}
"""
    with pytest.raises(RulesFileError) as caught:
        parse_rules(text, "rules.yaml", BASE)
    assert "rules.yaml:10: rules[0].reply.buttons.options[1].title: at most 20" in str(caught.value)


def test_a_rule_hands_the_conversation_over_after_its_reply() -> None:
    book = parse_rules(
        "rules:\n  - name: agent\n    match: exact\n    pattern: agent\n"
        "    reply: A person will answer you\n    handoff: {minutes: 45, reason: sales}\n"
        "  - {name: ping, match: exact, pattern: ping, reply: pong}\n",
        "rules.yaml",
        BASE,
    )
    reply = book.reply_to("Agent")
    assert reply is not None
    assert reply.text == "A person will answer you"
    assert reply.handoff == Handoff(minutes=45, reason="sales")
    other = book.reply_to("ping")
    assert other is not None
    assert other.handoff is None


def test_the_ai_responders_texts_have_defaults_and_the_file_replaces_them() -> None:
    base = default_rulebook("are you there", 600)
    assert base.ai_over_budget
    assert base.ai_unavailable
    book = parse_rules(
        "ai_over_budget: That is all for today.\n"
        "ai_unavailable: [Our assistant is away., {text: A person will answer.}]\n",
        "rules.yaml",
        base,
    )
    assert book.ai_over_budget == (Text(body="That is all for today."),)
    assert book.ai_unavailable == (
        Text(body="Our assistant is away."),
        Text(body="A person will answer."),
    )
    assert parse_rules("rules: []\n", "rules.yaml", base).ai_unavailable == base.ai_unavailable
    with pytest.raises(RulesFileError, match=r"rules.yaml:1: ai_unavailable"):
        parse_rules("ai_unavailable: {nonsense: 1}\n", "rules.yaml", base)
