"""Reply rules and per-number policy as data. Pure: text in, reply out.

A rule matches the whole message (``exact``) or its first word(s) (``prefix``, the rest captured
as ``{rest}``). Matching ignores surrounding space and case; the captured rest keeps its case.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from hiker.core.contracts import MessageTemplate


@dataclass(frozen=True)
class Rule:
    name: str
    match: Literal["exact", "prefix"]
    pattern: str
    reply: str

    def apply(self, text: str) -> str | None:
        normalized = " ".join(text.split())
        folded = normalized.casefold()
        pattern = " ".join(self.pattern.split()).casefold()
        if self.match == "exact":
            return self.reply if folded == pattern else None
        if folded == pattern or folded.startswith(pattern + " "):
            rest = normalized[len(pattern) :].strip()
            return self.reply.format(rest=rest) if rest else None
        return None


@dataclass(frozen=True)
class Reply:
    rule: str
    text: str


@dataclass(frozen=True)
class NumberPolicy:
    """How one business phone number follows up on a quiet user."""

    followup_text: str
    idle_timeout_seconds: float
    # Sent instead of the follow-up text when the 24 h window has closed; None: skip instead.
    followup_template: MessageTemplate | None = None


@dataclass(frozen=True)
class RuleBook:
    """Everything the rules file configures: replies and the per-number follow-up policy."""

    rules: tuple[Rule, ...]
    default: NumberPolicy
    default_reply: str | None = None
    numbers: Mapping[str, NumberPolicy] = field(default_factory=dict)

    def policy(self, phone_number_id: str) -> NumberPolicy:
        return self.numbers.get(phone_number_id, self.default)

    def reply_to(self, text: str | None) -> Reply | None:
        """The first matching rule's reply, else the default reply (for text messages)."""
        reply = choose_reply(self.rules, text)
        if reply is None and text and self.default_reply:
            return Reply("default", self.default_reply)
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


def choose_reply(rules: Sequence[Rule], text: str | None) -> Reply | None:
    """The first rule that matches ``text`` decides the reply; no text, no reply."""
    if not text:
        return None
    for rule in rules:
        reply = rule.apply(text)
        if reply is not None:
            return Reply(rule.name, reply)
    return None
