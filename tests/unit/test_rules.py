from __future__ import annotations

import pytest

from hiker.conversation.rules import DEFAULT_RULES, Rule, choose_reply


@pytest.mark.parametrize("text", ["hello", "Hello", "  HELLO  ", "hello\n", "hElLo\t"])
def test_hello_in_any_case_and_spacing(text: str) -> None:
    reply = choose_reply(DEFAULT_RULES, text)
    assert reply is not None
    assert (reply.rule, reply.text) == ("hello", "hello to you too")


@pytest.mark.parametrize("text", ["hello there", "helloo", "say hello", "", None])
def test_hello_matches_only_the_whole_message(text: str | None) -> None:
    reply = choose_reply(DEFAULT_RULES, text)
    assert reply is None or reply.rule != "hello"


def test_help_is_a_rule() -> None:
    reply = choose_reply(DEFAULT_RULES, " Help ")
    assert reply is not None
    assert reply.rule == "help"
    assert "hello" in reply.text


def test_echo_keeps_the_case_of_what_it_repeats() -> None:
    reply = choose_reply(DEFAULT_RULES, "ECHO  Hi   There")
    assert reply is not None
    assert reply.text == "Hi There"


def test_echo_without_text_is_no_reply() -> None:
    assert choose_reply(DEFAULT_RULES, "echo") is None
    assert choose_reply(DEFAULT_RULES, "echoes of the past") is None


def test_first_matching_rule_wins() -> None:
    rules = (Rule("a", "prefix", "go", "first {rest}"), Rule("b", "exact", "go home", "second"))
    reply = choose_reply(rules, "go home")
    assert reply is not None
    assert reply.text == "first home"
