"""Reply rules as data. Pure: text in, reply out.

A rule matches the whole message (``exact``) or its first word(s) (``prefix``, the rest captured
as ``{rest}``). Matching ignores surrounding space and case; the captured rest keeps its case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Rule:
    name: str
    match: Literal["exact", "prefix"]
    pattern: str
    reply: str

    def apply(self, text: str) -> str | None:
        normalized = " ".join(text.split())
        folded = normalized.casefold()
        pattern = self.pattern.casefold()
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
