"""Every log record of the whole suite, written as the services write it, with no phone number
of a test user left unmasked: in messages, extras (nested ones too), tracebacks and stacks.

Loaded by ``tests/conftest.py`` as a plugin. For the suite's length the root logger passes INFO
records too (the services log each message handled at INFO, with its user), so what a test
makes any service log is looked at, and a test after which a number shows fails, quoting the
line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest

from hiker.core.observability import MaskingFilter, json_lines

# The numbers the tests write as users: 1555 and seven digits (US fiction numbers, E.164).
UNMASKED_TEST_NUMBER = re.compile(r"(?<![\w*])\+?1555\d{7}(?!\w)")


class LeakWatch(logging.Handler):
    """Formats each record as the services would and keeps the lines that show a number."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(MaskingFilter())
        self.setFormatter(json_lines("test"))
        self.leaks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        if UNMASKED_TEST_NUMBER.search(line):
            self.leaks.append(line)


_WATCH = LeakWatch()


@pytest.fixture(scope="session", autouse=True)
def _watch_every_log_record() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.addHandler(_WATCH)
    root.setLevel(min(level, logging.INFO) if level else logging.INFO)
    yield
    root.removeHandler(_WATCH)
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _no_phone_number_in_logs() -> Iterator[None]:
    root = logging.getLogger()
    if _WATCH not in root.handlers:  # configure_logging (tested) replaces the root's handlers
        root.addHandler(_WATCH)
    _WATCH.leaks.clear()
    yield
    leaks, _WATCH.leaks[:] = list(_WATCH.leaks), []
    assert not leaks, "a phone number was logged unmasked:\n" + "\n".join(leaks[:3])
