"""Reading AMQP headers written by Hiker or by hand: what is missing or unreadable is None.

Times travel as decimal strings (an AMQP table carries a float in single precision, too coarse
for a time); numbers written by another tool are read as well.
"""

from __future__ import annotations

import contextlib
import json
from decimal import Decimal
from typing import Any


def header_text(raw: object) -> str | None:
    """A header as text: AMQP tables carry strings as bytes (or str, once decoded)."""
    if raw is None:
        return None
    return raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)


def header_json(raw: object) -> dict[str, Any] | None:
    """A header holding a JSON object, as a dict; None when it holds none (or an empty one)."""
    if not isinstance(raw, str | bytes):
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) and value else None


def header_epoch_seconds(raw: object) -> float | None:
    """A number, or a decimal string (exact, unlike a float header)."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float | Decimal):
        return float(raw)
    if isinstance(raw, str | bytes):
        with contextlib.suppress(ValueError):
            return float(raw)
    return None
