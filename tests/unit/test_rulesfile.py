from __future__ import annotations

from pathlib import Path

import pytest

from hiker.conversation.rulesfile import RulesFileError, RuleSource, default_rulebook, parse_rules
from hiker.core.actions import Template

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
