"""Reply rules and per-number policy as data. Pure: a message in, the reply's actions out.

A rule matches a text message whole (``exact``) or by its first word(s) (``prefix``, the rest
captured as ``{rest}``), a tapped button or list row by its id (``button``), or any message of
a type (``type``: ``image``, ``location``...). Text matching ignores surrounding space and case;
the captured rest keeps its case. The reply is one or more actions (``core.actions``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from hiker.core.actions import AnyAction, Template, Text
from hiker.core.contracts import MessageReceived
from hiker.core.requests import Handoff

Match = Literal["exact", "prefix", "button", "type"]
# The fields in which ``{rest}`` (the text after a prefix) is filled in.
_FILLED_FIELDS = ("body", "caption")


@dataclass(frozen=True, init=False)
class Rule:
    name: str
    match: Match
    pattern: str
    reply: tuple[AnyAction, ...]
    # Applied after the reply is sent: a person answers from then on.
    handoff: Handoff | None

    def __init__(
        self,
        name: str,
        match: Match,
        pattern: str,
        reply: str | Sequence[AnyAction],
        handoff: Handoff | None = None,
    ) -> None:
        object.__setattr__(self, "handoff", handoff)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "match", match)
        object.__setattr__(self, "pattern", pattern)
        object.__setattr__(
            self, "reply", (Text(body=reply),) if isinstance(reply, str) else tuple(reply)
        )

    def apply(self, message: Incoming) -> tuple[AnyAction, ...] | None:
        """The reply when this rule matches ``message``, else None."""
        if self.match == "button":
            return self.reply if message.reply_id == self.pattern else None
        if self.match == "type":
            return self.reply if message.message_type == self.pattern else None
        if message.text is None:
            return None
        normalized = " ".join(message.text.split())
        folded = normalized.casefold()
        pattern = " ".join(self.pattern.split()).casefold()
        if self.match == "exact":
            return self.reply if folded == pattern else None
        if folded == pattern or folded.startswith(pattern + " "):
            rest = normalized[len(pattern) :].strip()
            return tuple(_filled(action, rest) for action in self.reply) if rest else None
        return None


@dataclass(frozen=True)
class Incoming:
    """What the rules look at in a message."""

    text: str | None
    message_type: str = "text"
    # The id of the button or list row the user tapped, for a button or interactive reply.
    reply_id: str | None = None

    @classmethod
    def of(cls, message: MessageReceived | str | None) -> Incoming:
        if isinstance(message, MessageReceived):
            return cls(message.text, message.message_type, message.reply_id)
        return cls(message)


@dataclass(frozen=True)
class Reply:
    """A reply: the rule (or bot handler) that chose it, and its actions in order.

    Internal to the rules engine and conversation: it labels the replies metric by rule.
    """

    rule: str
    actions: tuple[AnyAction, ...]
    # The rule hands the conversation to a person once the actions are sent.
    handoff: Handoff | None = None

    def __post_init__(self) -> None:
        if not self.actions:
            raise ValueError("a reply needs at least one action")

    @property
    def text(self) -> str | None:
        """The first action's text, where that is a text."""
        first = self.actions[0]
        return first.body if isinstance(first, Text) else None


@dataclass(frozen=True)
class NumberPolicy:
    """How one business phone number follows up on a quiet user."""

    followup_text: str
    idle_timeout_seconds: float
    # Sent instead of the follow-up text when the 24 h window has closed; None: skip instead.
    followup_template: Template | None = None


# What the AI responder says when a daily token budget is spent, and when the model cannot
# answer (it then hands the conversation to a person): the rules file's ``ai_over_budget`` and
# ``ai_unavailable`` replace them.
AI_OVER_BUDGET_TEXT = (
    "I have answered all the messages I can for today. Please write again tomorrow."
)
AI_UNAVAILABLE_TEXT = "Sorry, I can't answer right now. A person will get back to you here soon."


@dataclass(frozen=True)
class RuleBook:
    """Everything the rules file configures: replies and the per-number follow-up policy."""

    rules: tuple[Rule, ...]
    default: NumberPolicy
    default_reply: tuple[AnyAction, ...] = ()
    numbers: Mapping[str, NumberPolicy] = field(default_factory=dict)
    ai_over_budget: tuple[AnyAction, ...] = (Text(body=AI_OVER_BUDGET_TEXT),)
    ai_unavailable: tuple[AnyAction, ...] = (Text(body=AI_UNAVAILABLE_TEXT),)

    def policy(self, phone_number_id: str) -> NumberPolicy:
        return self.numbers.get(phone_number_id, self.default)

    def reply_to(self, message: MessageReceived | str | None) -> Reply | None:
        """The first matching rule's reply, else the default reply (for text messages)."""
        incoming = Incoming.of(message)
        reply = choose_reply(self.rules, incoming)
        if reply is None and incoming.text and self.default_reply:
            return Reply("default", actions=self.default_reply)
        return reply


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule("hello", "exact", "hello", "hello to you too"),
    Rule(
        "help",
        "exact",
        "help",
        "Say 'hello' and I answer; 'echo <text>' and I repeat your text.",
    ),
    Rule("echo", "prefix", "echo", "{rest}"),
)


def choose_reply(
    rules: Sequence[Rule], message: Incoming | MessageReceived | str | None
) -> Reply | None:
    """The first rule that matches ``message`` decides the reply."""
    incoming = message if isinstance(message, Incoming) else Incoming.of(message)
    for rule in rules:
        actions = rule.apply(incoming)
        if actions is not None:
            return Reply(rule.name, actions=actions, handoff=rule.handoff)
    return None


def _filled(action: AnyAction, rest: str) -> AnyAction:
    # str.format, as rules files have always written it: ``{{`` is a literal brace.
    changes = {
        name: value.format(rest=rest)
        for name in _FILLED_FIELDS
        if isinstance(value := getattr(action, name, None), str) and "{" in value
    }
    return action.model_copy(update=changes) if changes else action
