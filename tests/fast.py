"""``--fast`` (``make test-fast``): leaves out tests marked ``slow`` or ``deploy``, and those
that took longer than ``HIKER_TEST_FAST_SECONDS`` the last time they ran (kept in pytest's
cache). Tests marked ``containers`` run only when asked for with ``-m containers``. The hooks
are registered by ``tests/conftest.py``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DURATIONS_KEY = "hiker/durations"
INTEGRATION = Path(__file__).resolve().parent / "integration"

_FAST_LEFT_OUT = pytest.StashKey[int]()
# Seconds per test id in this session (pytest_runtest_logreport has no config to stash them on).
_timings: dict[str, float] = {}


def _fast_limit() -> float:
    return float(os.environ.get("HIKER_TEST_FAST_SECONDS", "3"))


def _asked_for(config: pytest.Config, marker: str) -> bool:
    return marker in (config.getoption("markexpr") or "")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fast",
        action="store_true",
        help="the edit loop: leave out slow and deploy tests, and those slower than "
        "HIKER_TEST_FAST_SECONDS in their last run",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        # A new integration test module that forgets its pytestmark still counts as one.
        if item.path.is_relative_to(INTEGRATION):
            item.add_marker(pytest.mark.integration)
    fast = config.getoption("fast")
    cache = getattr(config, "cache", None)  # absent under -p no:cacheprovider
    last: dict[str, float] = cache.get(DURATIONS_KEY, {}) if cache is not None else {}

    def left_out(item: pytest.Item) -> bool:
        if item.get_closest_marker("containers"):
            return not _asked_for(config, "containers")
        return fast and bool(
            item.get_closest_marker("slow")
            or item.get_closest_marker("deploy")
            or last.get(item.nodeid, 0.0) > _fast_limit()
        )

    keep = [item for item in items if not left_out(item)]
    drop = [item for item in items if left_out(item)]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    if fast:
        config.stash[_FAST_LEFT_OUT] = len(drop)


def pytest_report_collectionfinish(config: pytest.Config) -> str | None:
    if _FAST_LEFT_OUT not in config.stash:
        return None
    return (
        f"--fast: {config.stash[_FAST_LEFT_OUT]} tests left out (slow, deploy, or over "
        f"{_fast_limit():g} s when they last ran); make test runs them all"
    )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # The test's own run only: shared setup (a vhost, a container) lands on whichever test
    # comes first and says nothing about that test.
    if report.when == "call":
        _timings[report.nodeid] = report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    cache = getattr(session.config, "cache", None)
    if cache is None or not _timings:
        return
    known: dict[str, float] = cache.get(DURATIONS_KEY, {})
    known.update({nodeid: round(seconds, 3) for nodeid, seconds in _timings.items()})
    cache.set(DURATIONS_KEY, known)
