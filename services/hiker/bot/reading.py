"""Meta's message object → the SDK's typed view (``messages.Message``). Pure.

Fields are read by the names of Meta's ``messages`` webhook reference. A field of an unexpected
type is read as absent, never raised on: a bot still gets the message, and ``msg.raw``.
"""

from __future__ import annotations

import json
from typing import Any

from hiker.bot.messages import (
    CallPermission,
    ContactCard,
    Context,
    FlowReply,
    Media,
    Message,
    MetaError,
    Notice,
    Order,
    OrderItem,
    Place,
    Reacted,
    Referral,
    Tap,
    User,
)
from hiker.core.contracts import MessageReceived
from hiker.core.media import MediaSource

MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")
# ``interactive.type`` → the kind of tap it is.
_TAPS = {"button_reply": "button", "list_reply": "list"}


def message_of(event: MessageReceived, media: MediaSource | None = None) -> Message:
    """The view of the message ``event`` carries; its media download through ``media``."""
    user = User(id=event.user, phone=event.wa_id, username=event.username, name=event.contact_name)
    return _view(event.raw, event.wamid, event.message_type, user, event, media)


def _view(
    raw: dict[str, Any],
    wamid: str,
    kind: str,
    user: User,
    event: MessageReceived,
    source: MediaSource | None,
) -> Message:
    tap = _tap(raw, kind)
    media = {
        name: _media(name, raw, event.phone_number_id, source) if kind == name else None
        for name in MEDIA_KINDS
    }
    edit = _dict(raw, "edit")
    edited = _dict(edit, "message")
    return Message(
        id=wamid,
        kind=kind,
        user=user,
        phone_number_id=event.phone_number_id,
        timestamp=event.timestamp,
        text=_text(raw, kind, tap, media),
        button_id=tap.id if tap is not None else None,
        tap=tap,
        image=media["image"],
        video=media["video"],
        audio=media["audio"],
        document=media["document"],
        sticker=media["sticker"],
        location=_place(_dict(raw, "location")) if kind == "location" else None,
        contacts=tuple(_card(c) for c in _dicts(raw, "contacts")) if kind == "contacts" else (),
        reaction=_reaction(_dict(raw, "reaction")) if kind == "reaction" else None,
        order=_order(_dict(raw, "order")) if kind == "order" else None,
        system=_notice(_dict(raw, "system")) if kind == "system" else None,
        flow=_flow(raw),
        call_permission=_call_permission(raw),
        edited_id=_str(edit, "original_message_id"),
        edit=(
            _view(edited, wamid, _str(edited, "type") or "unknown", user, event, source)
            if kind == "edit" and edited
            else None
        ),
        revoked_id=_str(_dict(raw, "revoke"), "original_message_id") if kind == "revoke" else None,
        errors=tuple(_error(e) for e in _dicts(raw, "errors")),
        context=_context(raw.get("context")),
        referral=_referral(raw.get("referral")),
        raw=raw,
    )


def _text(
    raw: dict[str, Any], kind: str, tap: Tap | None, media: dict[str, Media | None]
) -> str | None:
    if kind == "text":
        return _str(_dict(raw, "text"), "body")
    if tap is not None:
        return tap.title
    medium = media.get(kind)
    return medium.caption if medium is not None else None


def _tap(raw: dict[str, Any], kind: str) -> Tap | None:
    if kind == "button":  # a template's quick-reply button: its payload is the id
        button = _dict(raw, "button")
        payload = _str(button, "payload")
        return Tap("template", payload, _str(button, "text")) if payload is not None else None
    if kind != "interactive":
        return None
    interactive = _dict(raw, "interactive")
    which = _str(interactive, "type") or ""
    reply = _dict(interactive, which)
    tapped = _str(reply, "id")
    if which not in _TAPS or tapped is None:
        return None
    return Tap(_TAPS[which], tapped, _str(reply, "title"), _str(reply, "description"))


def _media(
    kind: str, raw: dict[str, Any], phone_number_id: str, source: MediaSource | None
) -> Media | None:
    part = _dict(raw, kind)
    media_id = _str(part, "id")
    if media_id is None:
        return None
    return Media(
        kind=kind,
        id=media_id,
        mime_type=_str(part, "mime_type"),
        sha256=_str(part, "sha256"),
        caption=_str(part, "caption"),
        filename=_str(part, "filename"),
        voice=part.get("voice") is True,
        animated=part.get("animated") is True,
        url=_str(part, "url"),
        phone_number_id=phone_number_id,
        source=source,
    )


def _place(part: dict[str, Any]) -> Place | None:
    latitude, longitude = _float(part.get("latitude")), _float(part.get("longitude"))
    if latitude is None or longitude is None:
        return None
    return Place(
        latitude,
        longitude,
        _str(part, "name"),
        _str(part, "address"),
        _str(part, "url"),
    )


def _card(part: dict[str, Any]) -> ContactCard:
    phones = _dicts(part, "phones")
    return ContactCard(
        name=_str(_dict(part, "name"), "formatted_name"),
        phones=tuple(p for phone in phones if (p := _str(phone, "phone")) is not None),
        wa_ids=tuple(w for phone in phones if (w := _str(phone, "wa_id")) is not None),
        emails=tuple(e for email in _dicts(part, "emails") if (e := _str(email, "email"))),
        raw=part,
    )


def _reaction(part: dict[str, Any]) -> Reacted:
    # Meta leaves ``emoji`` out (or empty) when the user removes their reaction.
    return Reacted(_str(part, "message_id"), _str(part, "emoji") or None)


def _order(part: dict[str, Any]) -> Order:
    items = []
    for item in _dicts(part, "product_items"):
        retailer_id, quantity = _str(item, "product_retailer_id"), item.get("quantity")
        if retailer_id is None or not isinstance(quantity, int):
            continue
        items.append(
            OrderItem(
                retailer_id,
                quantity,
                _float(item.get("item_price")),
                _str(item, "currency"),
            )
        )
    return Order(_str(part, "catalog_id"), tuple(items), _str(part, "text") or None)


def _notice(part: dict[str, Any]) -> Notice:
    return Notice(_str(part, "type"), _str(part, "body"), _str(part, "wa_id"))


def _flow(raw: dict[str, Any]) -> FlowReply | None:
    interactive = _dict(raw, "interactive")
    if _str(interactive, "type") != "nfm_reply":
        return None
    reply = _dict(interactive, "nfm_reply")
    try:
        response = json.loads(_str(reply, "response_json") or "{}")
    except ValueError:
        response = {}
    return FlowReply(
        _str(reply, "name"), _str(reply, "body"), response if isinstance(response, dict) else {}
    )


def _call_permission(raw: dict[str, Any]) -> CallPermission | None:
    interactive = _dict(raw, "interactive")
    if _str(interactive, "type") != "call_permission_reply":
        return None
    reply = _dict(interactive, "call_permission_reply")
    expires = reply.get("expiration_timestamp")
    return CallPermission(
        _str(reply, "response"),
        expires if isinstance(expires, int) else None,
        _str(reply, "response_source"),
    )


def _error(part: dict[str, Any]) -> MetaError:
    code = part.get("code")
    return MetaError(
        code if isinstance(code, int) else None,
        _str(part, "title"),
        _str(_dict(part, "error_data"), "details"),
    )


def _context(part: object) -> Context | None:
    if not isinstance(part, dict):
        return None
    product = _dict(part, "referred_product")
    catalog, retailer = _str(product, "catalog_id"), _str(product, "product_retailer_id")
    return Context(
        message_id=_str(part, "id"),
        sender=_str(part, "from"),
        forwarded=part.get("forwarded") is True,
        frequently_forwarded=part.get("frequently_forwarded") is True,
        product=(catalog, retailer) if catalog is not None and retailer is not None else None,
    )


def _referral(part: object) -> Referral | None:
    if not isinstance(part, dict):
        return None
    return Referral(
        source_type=_str(part, "source_type"),
        source_id=_str(part, "source_id"),
        source_url=_str(part, "source_url"),
        headline=_str(part, "headline"),
        body=_str(part, "body"),
        ctwa_clid=_str(part, "ctwa_clid"),
    )


def _dict(container: dict[str, Any], key: str) -> dict[str, Any]:
    value = container.get(key)
    return value if isinstance(value, dict) else {}


def _dicts(container: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = container.get(key)
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _str(container: dict[str, Any], key: str) -> str | None:
    value = container.get(key)
    return value if isinstance(value, str) else None


def _float(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
