"""A custom responder plugs in by name, without touching the pipeline; only today's shape."""

from __future__ import annotations

import pytest

from hiker.conversation.memory import Conversation
from hiker.conversation.responder import (
    Answer,
    Decided,
    Responder,
    RuleBookResponder,
    decided,
    load_responder,
)
from hiker.conversation.rules import Reply
from hiker.conversation.rulesfile import default_rulebook
from hiker.conversation.rulesource import RuleSource
from hiker.conversation.state import Turn
from hiker.core.actions import Text
from hiker.core.contracts import MessageReceived
from hiker.core.settings import ConfigError, ConversationSettings, load_settings


class Shouting:
    """Answers in capitals, and falls back to the rules for 'hello'."""

    def __init__(self, rules: RuleSource) -> None:
        self._rules = RuleBookResponder(rules)

    async def respond(self, message: MessageReceived, conversation: Conversation) -> Answer:
        if message.text == "hello":
            return await self._rules.respond(message, conversation)
        return Text(body=(message.text or "").upper())


class WithoutConversation:
    """The shape of a responder before conversations: no released version took it."""

    async def respond(self, message: MessageReceived) -> Answer:
        return Text(body="never")


def make(rules: RuleSource) -> Responder:
    return Shouting(rules)


def one_argument(rules: RuleSource) -> object:
    return WithoutConversation()


def not_a_responder(rules: RuleSource) -> object:
    return object()


class NoHistory:
    async def history(self, phone_number_id: str, user: str, limit: int) -> list[Turn]:
        return []


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
    conversation = Conversation("1", "2", {}, NoHistory())
    shouted = decided(await responder.respond(message("hey"), conversation))
    assert shouted == Decided(Reply("responder", (Text(body="HEY"),)))
    hello = decided(await responder.respond(message("hello"), conversation))
    assert hello == Decided(Reply("hello", (Text(body="hello to you too"),)))


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("no-colon", "must look like"),
        ("tests.unit.nowhere:make", "cannot be loaded"),
        ("tests.unit.test_responder:missing", "cannot be loaded"),
        ("tests.unit.test_responder:not_a_responder", "returned no responder"),
        ("tests.unit.test_responder:one_argument", r"takes \(message, conversation\)"),
    ],
)
def test_bad_responder_names_are_explained(spec: str, error: str) -> None:
    source = RuleSource(default_rulebook("are you there", 600))
    with pytest.raises(ConfigError, match=error):
        load_responder(spec, source)


def test_a_responder_answers_actions_not_a_labelled_reply() -> None:
    with pytest.raises(TypeError, match="Reply"):
        decided(Reply("old", (Text(body="as before"),)))  # type: ignore[arg-type]


def test_a_bot_and_a_responder_at_once_are_refused_naming_both() -> None:
    environ = {"HIKER_RESPONDER": "a.b:make", "HIKER_BOT": "c.d:bot"}
    with pytest.raises(ConfigError, match="HIKER_RESPONDER and HIKER_BOT are both set"):
        load_settings(ConversationSettings, environ)
