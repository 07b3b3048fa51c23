"""Test a bot without a broker, Redis or network: ``BotHarness`` and the fakes it runs on;
``FakeModel``, a scripted language model, for a bot's AI path."""

from __future__ import annotations

from hiker.testing.harness import BotHarness
from hiker.testing.model import FakeModel, Request, calls_tool, calls_tools

__all__ = ["BotHarness", "FakeModel", "Request", "calls_tool", "calls_tools"]
