"""Cursors of the history's pages: the sort key of the last item given, opaque to clients.

A cursor is URL-safe base64 of a small JSON array whose first element says which list it
belongs to, so that a cursor of one list handed to another is refused rather than misread.
The sort keys never change once written (a message's time and id), so a page never repeats
or skips a message, whatever is recorded meanwhile.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Final

# Above any cursor this api gives (a time, a number and a user of at most 128 characters, each
# escaped to 12): a longer one is not ours, and decoding it would only cost memory.
MAX_LENGTH: Final = 4096
# What the database's integer columns hold (BIGINT): a larger number is not a cursor of ours,
# and passed on it would be the database's error (a 500), not the client's.
_INT_MIN: Final = 0
_INT_MAX: Final = 2**63 - 1
# The longest number and user the tables hold (``db.models``).
_NUMBER_MAX: Final = 64
_USER_MAX: Final = 128


class BadCursor(ValueError):
    """Not a cursor this api gave (or not one of this list)."""


@dataclass(frozen=True)
class MessageCursor:
    """Messages are ordered latest first by (time, id)."""

    at_us: int
    id: int


@dataclass(frozen=True)
class ConversationCursor:
    """Conversations are ordered by their latest message, then number and user."""

    at_us: int
    phone_number_id: str
    user: str


@dataclass(frozen=True)
class TemplateCursor:
    """Templates are ordered by Meta's template id."""

    template_id: str


def encode(cursor: MessageCursor | ConversationCursor | TemplateCursor) -> str:
    if isinstance(cursor, MessageCursor):
        key: list[Any] = ["m", cursor.at_us, cursor.id]
    elif isinstance(cursor, TemplateCursor):
        key = ["t", cursor.template_id]
    else:
        key = ["c", cursor.at_us, cursor.phone_number_id, cursor.user]
    raw = json.dumps(key, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_messages(text: str) -> MessageCursor:
    key = _decode(text, "m", 3)
    at_us, id_ = key[1], key[2]
    if not (_is_int(at_us) and _is_int(id_)):
        raise BadCursor("not a cursor of this list")
    return MessageCursor(at_us, id_)


def decode_conversations(text: str) -> ConversationCursor:
    key = _decode(text, "c", 4)
    at_us, number, user = key[1], key[2], key[3]
    if not (_is_int(at_us) and _is_text(number, _NUMBER_MAX) and _is_text(user, _USER_MAX)):
        raise BadCursor("not a cursor of this list")
    return ConversationCursor(at_us, number, user)


def decode_templates(text: str) -> TemplateCursor:
    key = _decode(text, "t", 2)
    if not _is_text(key[1], _NUMBER_MAX):
        raise BadCursor("not a cursor of this list")
    return TemplateCursor(key[1])


def _decode(text: str, tag: str, length: int) -> list[Any]:
    if len(text) > MAX_LENGTH:
        raise BadCursor("not a cursor this api gave")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        key = json.loads(raw)
    # RecursionError: JSON nested deeper than the parser goes (``[[[...`` a few thousand deep).
    except (binascii.Error, ValueError, RecursionError):
        raise BadCursor("not a cursor this api gave") from None
    if not isinstance(key, list) or len(key) != length or key[0] != tag:
        raise BadCursor("not a cursor of this list")
    return key


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and _INT_MIN <= value <= _INT_MAX


def _is_text(value: object, longest: int) -> bool:
    # NUL is the one character PostgreSQL's text refuses outright.
    return isinstance(value, str) and len(value) <= longest and "\x00" not in value
