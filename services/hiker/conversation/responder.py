"""The responder interface: what decides the reply to a user's message.

Plug in your own logic (an NLP or LLM call, a database lookup) without touching the pipeline:
write a factory ``make(rules: RuleSource) -> Responder`` in any importable module and set
``HIKER_RESPONDER=your.module:make``. The rules file is one implementation
(``RuleBookResponder``); a custom responder may fall back to it.

A responder is called once per new inbound message (duplicates never reach it), may take its
time (the message stays unacked meanwhile, up to the claim lease), and raises to have the message
retried. Returning None sends nothing; the idle timer runs either way.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

from hiker.conversation.rules import Reply, RuleBook
from hiker.conversation.rulesfile import RulesFileError, load_rules_file
from hiker.core.contracts import MessageReceived
from hiker.core.settings import ConfigError

log = logging.getLogger(__name__)


@runtime_checkable
class Responder(Protocol):
    async def respond(self, message: MessageReceived) -> Reply | None:
        """The reply to ``message``, or None for no reply."""
        ...


class RuleSource:
    """The current RuleBook: from the rules file when there is one, reloaded when it changes.

    An invalid file at start stops the service (RulesFileError); an invalid edit later is logged
    and counted, and the last good rules stay in force.
    """

    def __init__(
        self,
        base: RuleBook,
        path: Path | None = None,
        on_reload: Callable[[str], None] | None = None,
    ) -> None:
        self._base = base
        self._path = path
        self._on_reload = on_reload or (lambda _outcome: None)
        self._stamp: tuple[int, int] | None = None
        self.current = base
        if path is not None:
            self._stamp = self._stat()
            self.current = load_rules_file(path, base)

    def _stat(self) -> tuple[int, int] | None:
        assert self._path is not None
        try:
            stat = self._path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def reload_if_changed(self) -> bool:
        """Load the file again if it changed since last time; True when new rules are in force."""
        if self._path is None:
            return False
        stamp = self._stat()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            self.current = load_rules_file(self._path, self._base)
        except RulesFileError as exc:
            log.error(
                "rules file change rejected; previous rules stay", extra={"problems": str(exc)}
            )
            self._on_reload("rejected")
            return False
        log.info(
            "rules reloaded", extra={"path": str(self._path), "rules": len(self.current.rules)}
        )
        self._on_reload("applied")
        return True

    async def watch(self, interval_seconds: float) -> None:
        """Poll for changes (works on ConfigMap volumes, whose files change by symlink swap)."""
        while True:
            await asyncio.sleep(interval_seconds)
            self.reload_if_changed()


class RuleBookResponder:
    """Replies by the rules file (or the built-in rules): the default responder."""

    def __init__(self, source: RuleSource) -> None:
        self._source = source

    async def respond(self, message: MessageReceived) -> Reply | None:
        return self._source.current.reply_to(message.text)


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
