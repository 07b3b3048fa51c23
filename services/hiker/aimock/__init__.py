"""An OpenAI-compatible stand-in for a language model, for local runs and tests."""
