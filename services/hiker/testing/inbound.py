"""Meta-shaped message objects of every inbound kind, as the ``messages`` webhook carries them.

The harness wraps one in a webhook body and runs it through ingress's own parsing, so a bot
under test sees exactly the event the pipeline would hand it. Field names are those of Meta's
webhook reference.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from typing import Any


def message(kind: str, part: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A message of ``kind`` carrying ``part`` under that kind's key (no sender, id or time:
    the harness fills those)."""
    raw: dict[str, Any] = {"type": kind, **extra}
    if part is not None:
        raw[kind] = part
    return raw


def text(body: str) -> dict[str, Any]:
    return message("text", {"body": body})


def button_reply(button_id: str, title: str) -> dict[str, Any]:
    return message(
        "interactive", {"type": "button_reply", "button_reply": {"id": button_id, "title": title}}
    )


def list_reply(row_id: str, title: str, description: str | None = None) -> dict[str, Any]:
    row = {"id": row_id, "title": title}
    if description is not None:
        row["description"] = description
    return message("interactive", {"type": "list_reply", "list_reply": row})


def template_button(payload: str, text: str) -> dict[str, Any]:
    """A tap on a template's quick-reply button."""
    return message("button", {"payload": payload, "text": text})


def sha256_of(data: bytes) -> str:
    """The ``sha256`` Meta gives a medium: the digest of its bytes, base64-encoded."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def media(
    kind: str,
    media_id: str,
    *,
    mime_type: str,
    data: bytes,
    caption: str | None = None,
    filename: str | None = None,
    voice: bool | None = None,
    animated: bool | None = None,
) -> dict[str, Any]:
    part: dict[str, Any] = {"mime_type": mime_type, "sha256": sha256_of(data), "id": media_id}
    optional = {"caption": caption, "filename": filename, "voice": voice, "animated": animated}
    part.update({key: value for key, value in optional.items() if value is not None})
    return message(kind, part)


def location(
    latitude: float, longitude: float, name: str | None = None, address: str | None = None
) -> dict[str, Any]:
    part: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
    if name is not None:
        part["name"] = name
    if address is not None:
        part["address"] = address
    return message("location", part)


def contacts(cards: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Contact cards, each a (formatted name, phone number)."""
    return {
        "type": "contacts",
        "contacts": [
            {"name": {"formatted_name": name}, "phones": [{"phone": phone, "type": "CELL"}]}
            for name, phone in cards
        ],
    }


def reaction(message_id: str, emoji: str | None) -> dict[str, Any]:
    part: dict[str, Any] = {"message_id": message_id}
    if emoji is not None:  # Meta leaves the emoji out when a reaction is removed
        part["emoji"] = emoji
    return message("reaction", part)


def order(
    catalog_id: str, items: Sequence[tuple[str, int, float, str]], note: str | None = None
) -> dict[str, Any]:
    """A cart: items as (product retailer id, quantity, item price, currency)."""
    return message(
        "order",
        {
            "catalog_id": catalog_id,
            "text": note or "",
            "product_items": [
                {"product_retailer_id": r, "quantity": q, "item_price": p, "currency": c}
                for r, q, p, c in items
            ],
        },
    )
