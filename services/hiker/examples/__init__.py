"""Example bots, runnable as they are: ``HIKER_BOT=hiker.examples.shop:bot make run`` (or
``hiker.examples.signup:bot``); tested with ``hiker.testing.BotHarness`` in ``tests/unit``."""
