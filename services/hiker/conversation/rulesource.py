"""The rules in force: the rules file read at start and read again when it changes, the last good
rules kept when an edit is bad. Conversation answers by it and sets its timers by its per-number
follow-ups (``RuleBook.policy``); the wait queues of those follow-ups are declared from it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from hiker.conversation.rules import RuleBook
from hiker.conversation.rulesfile import RulesFileError, load_rules_file

log = logging.getLogger(__name__)


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
