"""Routing-key words taken from a payload: safe for a topic exchange, whatever Meta sent. Pure."""

from __future__ import annotations

import string
from typing import Final


def routing_token(value: str) -> str:
    """A routing-key word: ASCII letters, digits, ``_`` and ``-`` only, at most 64 of them.

    Topic exchanges split on dots, so none may come from the payload; and a routing key is an
    AMQP short string of at most 255 bytes, which 64 letters of another script (``isalnum`` is
    true for them, 4 bytes each in UTF-8) would overflow, failing every retry of the webhook.
    """
    cleaned = "".join(ch if ch in TOKEN_CHARACTERS else "_" for ch in value[:64])
    return cleaned or "unknown"


TOKEN_CHARACTERS: Final = frozenset(string.ascii_letters + string.digits + "_-")
