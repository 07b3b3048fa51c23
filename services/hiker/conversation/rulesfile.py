"""The rules file: YAML → ``RuleBook``, with errors that name the file, the line and the problem.

```yaml
rules:                        # first match wins; matching ignores case and extra spaces
  - {name: hello, match: exact, pattern: hello, reply: hello to you too}
  - {name: echo, match: prefix, pattern: echo, reply: "{rest}"}
default_reply: null           # sent when no rule matches a text message; null: no reply
followup:                     # for every phone number id not listed under numbers
  text: are you there
  idle_timeout_seconds: 600
numbers:
  "100000000000001":
    followup:
      text: still there?
      idle_timeout_seconds: 300
      template: {name: hello_world, language: en_US}   # outside the 24 h window
ai_over_budget: We have answered a lot today; please write again tomorrow.
ai_unavailable: Sorry, I can't answer now. A person will get back to you.
```
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hiker.conversation.rules import DEFAULT_RULES, NumberPolicy, Rule, RuleBook
from hiker.core.actions import ACTIONS_BY_NAME, AnyAction, InvalidAction, Template, parse_action
from hiker.core.requests import HANDOFF_MAX_MINUTES, HANDOFF_REASON_MAX, Handoff
from hiker.core.settings import ConfigError

log = logging.getLogger(__name__)


class RulesFileError(ConfigError):
    """The rules file cannot be used; the message lists every problem with its line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Handoff(_Strict):
    minutes: float = Field(gt=0, le=HANDOFF_MAX_MINUTES)
    reason: str = Field(default="rule", min_length=1, max_length=HANDOFF_REASON_MAX)


class _Rule(_Strict):
    name: str = Field(min_length=1)
    match: Literal["exact", "prefix", "button", "type"]
    pattern: str = Field(min_length=1)
    # A text, one action ({buttons: {...}}), or a list of those: read by ``_actions``.
    reply: str | dict[str, Any] | list[str | dict[str, Any]]
    # ``handoff: {minutes: 60, reason: sales}``: a person answers after this reply.
    handoff: _Handoff | None = None


class _Template(_Strict):
    name: str = Field(min_length=1)
    language: str = Field(min_length=2)


class _Followup(_Strict):
    text: str | None = Field(default=None, min_length=1)
    idle_timeout_seconds: float | None = Field(default=None, gt=0)
    template: _Template | None = None


class _Number(_Strict):
    followup: _Followup = _Followup()


class _File(_Strict):
    rules: list[_Rule] | None = None
    default_reply: str | dict[str, Any] | list[str | dict[str, Any]] | None = None
    followup: _Followup = _Followup()
    numbers: dict[str, _Number] = Field(default_factory=dict)
    # The AI responder's replies when a token budget is spent and when the model cannot answer.
    ai_over_budget: str | dict[str, Any] | list[str | dict[str, Any]] | None = None
    ai_unavailable: str | dict[str, Any] | list[str | dict[str, Any]] | None = None


def default_rulebook(followup_text: str, idle_timeout_seconds: float) -> RuleBook:
    """What runs without a rules file: the built-in rules and the environment's follow-up."""
    return RuleBook(rules=DEFAULT_RULES, default=NumberPolicy(followup_text, idle_timeout_seconds))


def parse_rules(text: str, source: str, base: RuleBook) -> RuleBook:
    """``text`` (the file's content) as a RuleBook; what it leaves out comes from ``base``."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise RulesFileError(f"{source}{line}: not valid YAML: {exc}") from None
    if document is None:
        document = {}
    problems: list[tuple[Loc, str]] = []
    try:
        parsed = _File.model_validate(document)
    except ValidationError as exc:
        problems = [(error["loc"], error["msg"]) for error in exc.errors()]
        raise RulesFileError(_render(problems, root, source)) from None
    rules: list[Rule] = []
    for index, rule in enumerate(parsed.rules or []):
        reply = _actions(rule.reply, ("rules", index, "reply"), problems)
        handoff = (
            Handoff(minutes=rule.handoff.minutes, reason=rule.handoff.reason)
            if rule.handoff is not None
            else None
        )
        rules.append(Rule(rule.name, rule.match, rule.pattern, reply, handoff))
    default_reply = (
        _actions(parsed.default_reply, ("default_reply",), problems)
        if parsed.default_reply is not None
        else ()
    )
    ai_over_budget = (
        _actions(parsed.ai_over_budget, ("ai_over_budget",), problems)
        if parsed.ai_over_budget is not None
        else base.ai_over_budget
    )
    ai_unavailable = (
        _actions(parsed.ai_unavailable, ("ai_unavailable",), problems)
        if parsed.ai_unavailable is not None
        else base.ai_unavailable
    )
    if problems:
        raise RulesFileError(_render(problems, root, source))
    default = _policy(parsed.followup, base.default)
    return RuleBook(
        rules=tuple(rules) if parsed.rules is not None else base.rules,
        default=default,
        default_reply=default_reply,
        numbers={pnid: _policy(n.followup, default) for pnid, n in parsed.numbers.items()},
        ai_over_budget=ai_over_budget,
        ai_unavailable=ai_unavailable,
    )


Loc = tuple[int | str, ...]


def _render(problems: list[tuple[Loc, str]], root: Any, source: str) -> str:
    return "\n".join(
        f"{source}:{_line_of(root, loc)}: {_path(loc)}: {message}" for loc, message in problems
    )


def _actions(
    reply: str | dict[str, Any] | list[str | dict[str, Any]],
    loc: Loc,
    problems: list[tuple[Loc, str]],
) -> tuple[AnyAction, ...]:
    """A reply's actions; what is wrong goes to ``problems`` with where it is."""
    items = reply if isinstance(reply, list) else [reply]
    if not items:
        problems.append((loc, "a reply needs at least one action"))
    actions: list[AnyAction] = []
    for index, item in enumerate(items):
        where = (*loc, index) if isinstance(reply, list) else loc
        action = _action(item, where, problems)
        if action is None:
            continue
        problem = _placeholder_problem(action)
        if problem:
            problems.append((where, problem))
        actions.append(action)
    return tuple(actions)


def _action(item: str | dict[str, Any], loc: Loc, problems: list[tuple[Loc, str]]) -> Any:
    if isinstance(item, str):
        item = {"text": item}
    if len(item) != 1:
        names = ", ".join(ACTIONS_BY_NAME)
        problems.append((loc, f"one action per entry ({names}); use a list for several"))
        return None
    [(name, content)] = item.items()
    try:
        return parse_action(name, content)
    except InvalidAction as exc:
        problems.extend(((*loc, *where), message) for where, message in exc.problems)
        return None


def _placeholder_problem(action: AnyAction) -> str | None:
    for name in ("body", "caption"):
        value = getattr(action, name, None)
        if isinstance(value, str):
            try:
                value.format(rest="")
            except (KeyError, IndexError, ValueError) as exc:
                return f"only the placeholder {{rest}} is available ({exc})"
    return None


def load_rules_file(path: Path, base: RuleBook) -> RuleBook:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesFileError(f"{path}: cannot be read: {exc}") from None
    return parse_rules(text, str(path), base)


def _policy(followup: _Followup, fallback: NumberPolicy) -> NumberPolicy:
    template = followup.template or None
    return NumberPolicy(
        followup_text=followup.text or fallback.followup_text,
        idle_timeout_seconds=followup.idle_timeout_seconds or fallback.idle_timeout_seconds,
        followup_template=Template(name=template.name, language=template.language)
        if template
        else fallback.followup_template,
    )


def _path(loc: tuple[int | str, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "file"


def _line_of(node: Any, loc: tuple[int | str, ...]) -> int:
    """The 1-based line of the YAML node at ``loc``, or of its nearest existing parent."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == str(part)), None)
            if match is None:
                key = next((k for k, _ in node.value if k.value == str(part)), None)
                return key.start_mark.line + 1 if key is not None else line
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
        else:
            return line
        line = node.start_mark.line + 1
    return line
