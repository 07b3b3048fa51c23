"""The responder interface: what decides the reply to a user's message, and to a reminder.

This is the layer under the SDK (``hiker.bot``): a ``Bot`` implements it, and so does the rules
file (``RuleBookResponder``). Write one directly only when routes and filters do not fit:
a factory ``make(rules: RuleSource) -> Responder`` in any importable module, named by
``HIKER_RESPONDER=your.module:make``.

``respond(message, conversation)`` returns the reply's actions (``hiker.bot``: ``Text``,
``Buttons``, ``ListMenu``, ``Image``...) and ``Remind`` requests: one, a list of them (actions
sent in that order), or None for no reply. ``conversation.state`` is the responder's own
JSON-able dict, saved when it returns; ``await conversation.history()`` the last messages both
ways. ``on_reminder(reminder, conversation)``, when the responder has it, is called when a
``Remind`` comes due and the user stayed quiet; it returns the same kinds of answer.

A responder is called once per new inbound message (duplicates never reach it; a conflict on
the state, two replicas answering two messages of one user at once, calls it again with the
fresh state), may take its time (the message stays unacked meanwhile) up to
``HIKER_RESPONDER_TIMEOUT_SECONDS``, past which it is cancelled, nothing it did to the state is
saved, and the message (or reminder) is held and asked again; and raises to have the message
retried. The idle timer runs either way.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel

from hiker.conversation.memory import Conversation, Reminder
from hiker.conversation.rules import Reply
from hiker.conversation.rulesource import RuleSource
from hiker.core.actions import AnyAction
from hiker.core.contracts import MessageReceived
from hiker.core.requests import Handoff, Remind
from hiker.core.settings import ConfigError


@dataclass(frozen=True)
class Decided:
    """A responder's answer, sorted: the reply to send (labelled with the rule or handler that
    chose it, for the replies metric), and the reminders to set."""

    reply: Reply | None
    reminders: tuple[Remind, ...] = ()
    # Hand the conversation to a person once the reply is sent (the last one asked for).
    handoff: Handoff | None = None

    @property
    def handing_off(self) -> Handoff | None:
        """The handoff asked for, by the responder or by the rule that chose the reply."""
        return self.handoff or (self.reply.handoff if self.reply is not None else None)


# What ``respond`` and ``on_reminder`` may return: actions and reminders, or None. A Decided
# is what the rules engine and ``hiker.bot`` return, already sorted and labelled.
Answer = AnyAction | Remind | Handoff | Sequence[AnyAction | Remind | Handoff] | Decided | None

# The ``rule`` label of what a custom responder returns.
RESPONDER_RULE = "responder"


@runtime_checkable
class Responder(Protocol):
    async def respond(self, message: MessageReceived, conversation: Conversation) -> Answer:
        """The answer to ``message``: actions and reminders, or None."""
        ...


@runtime_checkable
class RemindedResponder(Protocol):
    async def on_reminder(self, reminder: Reminder, conversation: Conversation) -> Answer:
        """The answer to a reminder that came due (the user stayed quiet, or it keeps)."""
        ...


class RuleBookResponder:
    """Replies by the rules file (or the built-in rules): the default responder."""

    def __init__(self, source: RuleSource) -> None:
        self._source = source

    async def respond(self, message: MessageReceived, conversation: Conversation) -> Decided:
        return Decided(self._source.current.reply_to(message))


def decided(answer: Answer) -> Decided:
    """A responder's answer as a reply and reminders; TypeError for anything else."""
    if answer is None:
        return Decided(None)
    if isinstance(answer, Decided):
        return answer
    items: Sequence[Any] = answer if isinstance(answer, list | tuple) else [answer]
    if not all(isinstance(item, BaseModel) for item in items):
        raise TypeError(
            "a responder returns actions and Remind (hiker.bot) or None, not "
            + ", ".join(sorted({type(i).__name__ for i in items if not isinstance(i, BaseModel)}))
        )
    reminders = tuple(item for item in items if isinstance(item, Remind))
    handoffs = [item for item in items if isinstance(item, Handoff)]
    actions = tuple(item for item in items if not isinstance(item, Remind | Handoff))
    return Decided(
        Reply(RESPONDER_RULE, actions=actions) if actions else None,
        reminders,
        handoffs[-1] if handoffs else None,
    )


def as_responder(candidate: Any) -> Responder:
    """``candidate`` when it is a responder: an async ``respond(message, conversation)``."""
    respond = getattr(candidate, "respond", None)
    if respond is None or not inspect.iscoroutinefunction(respond):
        raise TypeError("a responder needs an async respond(message, conversation)")
    parameters = [
        p
        for p in inspect.signature(respond).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if len(parameters) != 2 or not isinstance(candidate, Responder):
        raise TypeError("respond() takes (message, conversation)")
    return candidate


def reminded(responder: Any) -> RemindedResponder | None:
    """The responder's ``on_reminder``, when it has one."""
    return responder if isinstance(responder, RemindedResponder) else None


def load_responder(spec: str, source: RuleSource) -> Responder:
    """``module:factory`` → ``factory(source)``; errors name what is wrong with ``spec``."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"HIKER_RESPONDER must look like 'package.module:factory', not {spec!r}")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"HIKER_RESPONDER {spec!r} cannot be loaded: {exc}") from None
    try:
        return as_responder(factory(source))
    except TypeError as exc:
        raise ConfigError(f"HIKER_RESPONDER {spec!r} returned no responder ({exc})") from None
