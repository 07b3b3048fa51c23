"""Test a bot without a broker, Redis or network: ``BotHarness`` and the fakes it runs on."""
