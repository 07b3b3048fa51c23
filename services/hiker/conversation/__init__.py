"""Conversation: dedupes inbound messages, applies reply rules and keeps per-user idle timers."""
