"""Operator and developer tools: the webhook simulator and the local runner."""
