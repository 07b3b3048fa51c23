"""Test a bot without a broker, Redis or network: ``BotHarness`` and the fakes it runs on."""

from __future__ import annotations

from hiker.testing.harness import BotHarness

__all__ = ["BotHarness"]
