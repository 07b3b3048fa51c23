"""One module per scenario; each ``run(ctx)`` returns a JSON-able result dict."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.measure import Context
from benchmarks.scenarios import (
    conversation,
    cost,
    e2e,
    ingress,
    profile,
    pywa,
    replies,
    sender,
    timers,
)

Scenario = Callable[[Context], dict[str, Any]]

SCENARIOS: dict[str, Scenario] = {
    "ingress": ingress.run,
    "pywa": pywa.run,
    "e2e": e2e.run,
    "timers": timers.run,
    "sender": sender.run,
    "conversation": conversation.run,
    "profile": profile.run,
    "cost": cost.run,
    "replies": replies.run,
}
# Scenarios that measure no Hiker code: run for the current side only under --baseline.
WITHOUT_HIKER = frozenset({"pywa"})
# Scenarios that need wrk (the others use loadgen.py).
NEED_WRK = frozenset({"ingress", "pywa"})
