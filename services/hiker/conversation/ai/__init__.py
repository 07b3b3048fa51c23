"""The AI responder: what no rule and no handler takes goes to a language model (docs/ai.md)."""
