"""A custom responder plugs in by name, without touching the pipeline."""

from __future__ import annotations

import pytest

from hiker.conversation.responder import Responder, RuleBookResponder, load_responder
from hiker.conversation.rules import Reply
from hiker.conversation.rulesfile import RuleSource, default_rulebook
from hiker.core.contracts import MessageReceived
from hiker.core.settings import ConfigError


class Shouting:
    """Answers in capitals, and falls back to the rules for 'hello'."""

    def __init__(self, rules: RuleSource) -> None:
        self._rules = RuleBookResponder(rules)

    async def respond(self, message: MessageReceived) -> Reply | None:
        if message.text == "hello":
            return await self._rules.respond(message)
        return Reply("shout", (message.text or "").upper())


def make(rules: RuleSource) -> Responder:
    return Shouting(rules)


def not_a_responder(rules: RuleSource) -> object:
    return object()


def message(text: str) -> MessageReceived:
    return MessageReceived(
        wamid="wamid.1",
        phone_number_id="1",
        user="2",
        message_type="text",
        text=text,
        timestamp=1,
        received_at=1.0,
    )


async def test_custom_responder_is_loaded_by_name() -> None:
    source = RuleSource(default_rulebook("are you there", 600))
    responder = load_responder("tests.unit.test_responder:make", source)
    assert await responder.respond(message("hey")) == Reply("shout", "HEY")
    assert await responder.respond(message("hello")) == Reply("hello", "hello to you too")


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("no-colon", "must look like"),
        ("tests.unit.nowhere:make", "cannot be loaded"),
        ("tests.unit.test_responder:missing", "cannot be loaded"),
        ("tests.unit.test_responder:not_a_responder", "returned no responder"),
    ],
)
def test_bad_responder_names_are_explained(spec: str, error: str) -> None:
    source = RuleSource(default_rulebook("are you there", 600))
    with pytest.raises(ConfigError, match=error):
        load_responder(spec, source)
