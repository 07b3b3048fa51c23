"""What a person would read of a message Meta sent, and what they tapped. Pure."""

from __future__ import annotations

from typing import Any


def message_text(raw: dict[str, Any]) -> str | None:
    """The text a person would read in ``raw``: a body, a caption, a button or list title."""
    kind = raw.get("type")
    if kind == "text":
        return text_at(raw.get("text"), "body")
    if kind == "button":
        return text_at(raw.get("button"), "text")
    if kind == "interactive":
        interactive = raw.get("interactive")
        if isinstance(interactive, dict):
            reply = interactive.get(str(interactive.get("type")))
            return text_at(reply, "title")
        return None
    return text_at(raw.get(kind), "caption") if isinstance(kind, str) else None


def message_reply_id(raw: dict[str, Any]) -> str | None:
    """The id of what the user tapped: a reply button or list row (``interactive``), or a
    template's quick-reply button (``button``, its payload)."""
    kind = raw.get("type")
    if kind == "interactive":
        interactive = raw.get("interactive")
        if isinstance(interactive, dict):
            return text_at(interactive.get(str(interactive.get("type"))), "id")
        return None
    if kind == "button":
        return text_at(raw.get("button"), "payload")
    return None


def text_at(container: object, key: str) -> str | None:
    if isinstance(container, dict):
        value = container.get(key)
        if isinstance(value, str):
            return value
    return None
