"""``Bot``: handlers declared with decorators, tried in order; what none takes goes to the rules.

A ``Bot`` is a responder (``hiker.conversation.responder``): conversation calls its
``respond(message, conversation)`` and ``on_reminder(reminder, conversation)``. The service binds
its own rules (``with_rules``), so that the rules file it watches answers what no handler
takes; a bot used on its own falls back to the file named by ``Bot(rules=...)``.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import re
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

from hiker.bot import filters
from hiker.bot.ai import BotAI
from hiker.bot.filters import Filter
from hiker.bot.messages import Message
from hiker.bot.reading import message_of
from hiker.conversation.ai.functions import FunctionTool
from hiker.conversation.ai.tools import BUILTIN_NAMES, is_ai_reminder
from hiker.conversation.memory import Conversation, Reminder
from hiker.conversation.responder import (
    RESPONDER_RULE,
    Answer,
    Decided,
    Responder,
    RuleBookResponder,
    decided,
)
from hiker.conversation.rules import Reply
from hiker.conversation.rulesfile import default_rulebook
from hiker.conversation.rulesource import RuleSource
from hiker.core.contracts import MessageReceived
from hiker.core.media import MediaSource
from hiker.core.settings import ConfigError


class _Skip(enum.Enum):
    SKIP = "skip"


# What a handler returns when, having looked closer (at the state, say), the message is not
# its to answer: the next handler that accepts it answers, or the rules file.
Skip = _Skip.SKIP

MessageHandler = Callable[[Message, Conversation], Awaitable[Answer | Literal[_Skip.SKIP]]]
ReminderHandler = Callable[[Reminder, Conversation], Awaitable[Answer]]
H = TypeVar("H", bound=MessageHandler)
R = TypeVar("R", bound=ReminderHandler)
F = TypeVar("F", bound=Callable[..., Any])

# What the rules of a bot used on its own (no service around it) say of idle users: nothing
# it sends, since only the service runs timers; the values only make a valid rule book.
_STANDALONE_FOLLOWUP = ("are you there", 600.0)


@dataclass(frozen=True)
class _MessageRoute:
    accepts: Filter
    handler: MessageHandler

    @property
    def name(self) -> str:
        return getattr(self.handler, "__name__", "handler")


class Bot:
    """A bot: ``@bot.on_text``, ``@bot.on_button``, ``@bot.on_message(filter)`` and
    ``@bot.on_reminder(key)`` declare its handlers; each is an ``async def handler(msg,
    conversation)`` returning actions and ``Remind``s (one, a list, or None for no reply).

    Handlers are tried in the order declared; the first whose filter accepts the message
    answers it, unless it returns ``Skip``. A message no handler takes is answered by the
    rules file.

    ``@bot.tool`` offers a function to the model (the AI responder, and ``bot.ai.answer``
    from a handler).
    """

    def __init__(self, rules: str | Path | None = None) -> None:
        # Relative to the working directory; read when the service starts (or, for a bot used
        # on its own, on its first message), never on import.
        self.rules_file = Path(rules) if rules is not None else None
        self._routes: list[_MessageRoute] = []
        self._reminders: list[tuple[str | None, ReminderHandler]] = []
        self._own_rules: RuleBookResponder | None = None
        self._tools: dict[str, FunctionTool] = {}
        # The model, as handlers reach it: ``await bot.ai.answer(msg, conv)``.
        self.ai = BotAI()

    @overload
    def tool(self, function: F, /) -> F: ...

    @overload
    def tool(
        self, /, *, name: str | None = None, description: str | None = None
    ) -> Callable[[F], F]: ...

    def tool(
        self,
        function: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
    ) -> Any:
        """Offer a function to the model: ``@bot.tool`` or ``@bot.tool(name=...,
        description=...)``. Its name and docstring tell the model what it does, its type hints
        the JSON schema of its arguments (pydantic), validated before it is called; what it
        returns (JSON-able) is what the model reads. A parameter typed ``ToolContext`` gets
        whose turn it is. Async or sync (a sync one runs in a thread)."""

        def declare(declared: Callable[..., Any]) -> Callable[..., Any]:
            tool = FunctionTool(declared, name=name, description=description)
            if tool.name in self._tools or tool.name in BUILTIN_NAMES:
                raise TypeError(f"a tool named {tool.name!r} exists already")
            self._tools[tool.name] = tool
            return declared

        return declare(function) if function is not None else declare

    @property
    def tools(self) -> list[FunctionTool]:
        """The functions offered to the model, in the order declared."""
        return list(self._tools.values())

    def on_message(self, accepts: Filter | None = None) -> Callable[[H], H]:
        """Declare a handler of the messages ``accepts`` takes (every message when None)."""
        return self._route(accepts or filters.any_message)

    def on_text(
        self,
        exact: str | None = None,
        *,
        regex: str | re.Pattern[str] | None = None,
        startswith: str | None = None,
    ) -> Callable[[H], H]:
        """A handler of texts: equal to ``exact`` (trimmed, in any case), matching ``regex``
        (``re.search``), or starting with the word(s) ``startswith``; any text when none."""
        given = [f for f in (exact, regex, startswith) if f is not None]
        if len(given) > 1:
            raise TypeError("on_text takes one of exact, regex= and startswith=")
        accepts = filters.text
        if exact is not None:
            accepts = accepts & filters.text_is(exact)
        elif regex is not None:
            accepts = accepts & filters.text_matches(regex)
        elif startswith is not None:
            accepts = accepts & filters.text_startswith(startswith)
        return self._route(accepts)

    def on_button(self, *ids: str) -> Callable[[H], H]:
        """A handler of taps on the buttons or list rows of these ids (any, when none)."""
        return self._route(filters.button(*ids))

    @overload
    def on_reminder(self, key: str | None = None) -> Callable[[R], R]: ...

    @overload
    def on_reminder(
        self, key: Reminder, conversation: Conversation
    ) -> Coroutine[Any, Any, Answer]: ...

    def on_reminder(
        self, key: str | Reminder | None = None, conversation: Conversation | None = None
    ) -> Callable[[R], R] | Coroutine[Any, Any, Answer]:
        """``@bot.on_reminder("key")`` declares the handler of the reminders set with that key
        (every key when none); called with a reminder, it answers it (the responder side)."""
        if isinstance(key, Reminder):
            if conversation is None:
                raise TypeError("on_reminder(reminder, conversation) needs the conversation")
            return self.answer_reminder(key, conversation)

        def declare(handler: R) -> R:
            _check_async(handler)
            self._reminders.append((key, handler))
            return handler

        return declare

    async def respond(self, message: MessageReceived, conversation: Conversation) -> Answer:
        """The responder side: the first handler that takes ``message`` answers it."""
        return await self.answer(message, conversation, self._standalone_rules())

    async def answer(
        self,
        message: MessageReceived,
        conversation: Conversation,
        rules: RuleBookResponder | None,
        media: MediaSource | None = None,
    ) -> Answer:
        """``message`` answered by the first handler that takes it, else by ``rules``; its
        media download through ``media``."""
        view = message_of(message, media)
        for route in self._routes:
            if route.accepts(view):
                answer = await route.handler(view, conversation)
                if answer is not Skip:
                    return _labelled(route.name, answer)
        return await rules.respond(message, conversation) if rules is not None else None

    async def answer_reminder(self, reminder: Reminder, conversation: Conversation) -> Answer:
        """``reminder`` answered by the handler of its key (None when it has none); one the
        model set (``remind``), by the model."""
        if is_ai_reminder(reminder.key) and self.ai.configured:
            return _labelled("ai", await self.ai.follow_up(reminder, conversation))
        for key, handler in self._reminders:
            if key is None or key == reminder.key:
                name = getattr(handler, "__name__", "reminder")
                return _labelled(name, await handler(reminder, conversation))
        return None

    def with_rules(self, rules: RuleSource, media: MediaSource | None = None) -> Responder:
        """This bot answering what no handler takes by ``rules`` (the service's own), its
        messages' media downloading through ``media``."""
        return _Bound(self, RuleBookResponder(rules), media)

    def _route(self, accepts: Filter) -> Callable[[H], H]:
        def declare(handler: H) -> H:
            _check_async(handler)
            self._routes.append(_MessageRoute(accepts, handler))
            return handler

        return declare

    def _standalone_rules(self) -> RuleBookResponder:
        if self._own_rules is None:
            base = default_rulebook(*_STANDALONE_FOLLOWUP)
            self._own_rules = RuleBookResponder(RuleSource(base, self.rules_file))
        return self._own_rules


class _Bound:
    """A bot with the service's rules behind it: the responder conversation runs."""

    def __init__(self, bot: Bot, rules: RuleBookResponder, media: MediaSource | None) -> None:
        self.bot = bot
        self._rules = rules
        self._media = media

    async def respond(self, message: MessageReceived, conversation: Conversation) -> Answer:
        return await self.bot.answer(message, conversation, self._rules, self._media)

    async def on_reminder(self, reminder: Reminder, conversation: Conversation) -> Answer:
        return await self.bot.answer_reminder(reminder, conversation)


def _labelled(name: str, answer: Answer) -> Decided:
    """``answer`` with its reply labelled by the handler that chose it (the replies metric)."""
    sorted_ = decided(answer)
    if sorted_.reply is None or sorted_.reply.rule != RESPONDER_RULE:
        return sorted_
    return Decided(
        Reply(name, sorted_.reply.actions, sorted_.reply.handoff),
        sorted_.reminders,
        sorted_.handoff,
    )


def _check_async(handler: Callable[..., Any]) -> None:
    if not inspect.iscoroutinefunction(handler):
        name = getattr(handler, "__qualname__", repr(handler))
        raise TypeError(f"a bot handler is an async def: {name} is not")


def add_bot_path(path: Path | None) -> None:
    """Put ``path`` (HIKER_BOT_PATH) first on the import path, where HIKER_BOT and
    HIKER_RESPONDER are looked up; a path that is not a directory refuses the start."""
    if path is None:
        return
    if not path.is_dir():
        raise ConfigError("HIKER_BOT_PATH is not a directory this process can read")
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


def load_bot(spec: str) -> Bot:
    """``module:attribute`` → the ``Bot`` it names (or the one its factory returns); errors
    name HIKER_BOT and what is wrong."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"HIKER_BOT must look like 'package.module:bot', not {spec!r}")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
        bot = found if isinstance(found, Bot) else found() if callable(found) else None
    except Exception as exc:  # the bot's own code failing on import: say so, in one line
        raise ConfigError(f"HIKER_BOT {spec!r} cannot be loaded: {exc}") from None
    if not isinstance(bot, Bot):
        raise ConfigError(f"HIKER_BOT {spec!r} names neither a Bot nor a factory returning one")
    return bot
