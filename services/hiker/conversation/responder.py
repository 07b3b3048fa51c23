"""The responder interface: what decides the reply to a user's message.

Plug in your own logic (an NLP or LLM call, a database lookup) without touching the pipeline:
write a factory ``make(rules: RuleSource) -> Responder`` in any importable module and set
``HIKER_RESPONDER=your.module:make``. The rules file is one implementation
(``RuleBookResponder``); a custom responder may fall back to it.

A responder returns the reply's actions (``hiker.bot``: ``Text``, ``Buttons``, ``ListMenu``,
``Image``...): one action, a list of them (sent in that order), a ``Reply``, or None for no reply.
It is called once per new inbound message (duplicates never reach it), may take its time (the
message stays unacked meanwhile, up to the claim lease), and raises to have the message
retried. The idle timer runs either way.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from pydantic import BaseModel

from hiker.conversation.rules import Reply
from hiker.conversation.rulesfile import RuleSource
from hiker.core.actions import AnyAction
from hiker.core.contracts import MessageReceived
from hiker.core.settings import ConfigError

# What ``respond`` may return.
Answer = Reply | AnyAction | Sequence[AnyAction] | None

# The ``rule`` label of what a custom responder returns without a Reply of its own.
RESPONDER_RULE = "responder"


@runtime_checkable
class Responder(Protocol):
    async def respond(self, message: MessageReceived) -> Answer:
        """The reply to ``message``: an action, a list of actions, a Reply, or None."""
        ...


class RuleBookResponder:
    """Replies by the rules file (or the built-in rules): the default responder."""

    def __init__(self, source: RuleSource) -> None:
        self._source = source

    async def respond(self, message: MessageReceived) -> Reply | None:
        return self._source.current.reply_to(message)


def as_reply(answer: Answer) -> Reply | None:
    """A responder's answer as a Reply (None: nothing to send); TypeError for anything else."""
    if answer is None or isinstance(answer, Reply):
        return answer
    if isinstance(answer, BaseModel):
        return Reply(RESPONDER_RULE, actions=(answer,))
    if isinstance(answer, list | tuple):
        actions = tuple(answer)
        if not all(isinstance(action, BaseModel) for action in actions):
            raise TypeError("a responder's list holds actions (hiker.bot), nothing else")
        return Reply(RESPONDER_RULE, actions=actions) if actions else None
    raise TypeError(
        f"a responder returns actions (hiker.bot), a Reply or None, not {type(answer).__name__}"
    )


def load_responder(spec: str, source: RuleSource) -> Responder:
    """``module:factory`` → ``factory(source)``; errors name what is wrong with ``spec``."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"HIKER_RESPONDER must look like 'package.module:factory', not {spec!r}")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"HIKER_RESPONDER {spec!r} cannot be loaded: {exc}") from None
    responder = factory(source)
    if not isinstance(responder, Responder):
        raise ConfigError(f"HIKER_RESPONDER {spec!r} returned no responder (needs async respond())")
    return responder
