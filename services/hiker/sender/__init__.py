"""Sender: calls the Graph API, paced per number, retrying transient failures, parking the rest."""
