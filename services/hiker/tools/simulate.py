"""Post a correctly signed, real-shaped webhook to an ingress, as Meta would: a user's message,
a tapped button, and Conversation Routing's notices and standby copies."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from typing import Any, Literal

import aiohttp

from hiker.core.signature import SIGNATURE_HEADER, sign

DEFAULT_PHONE_NUMBER_ID = "100000000000001"
DEFAULT_DISPLAY_NUMBER = "15550000000"


def new_wamid() -> str:
    return "wamid.SIM" + secrets.token_hex(16).upper()


def text_message(
    user: str, text: str, *, wamid: str | None = None, timestamp: int | None = None
) -> dict[str, Any]:
    return {
        "from": user,
        "id": wamid or new_wamid(),
        "timestamp": str(timestamp if timestamp is not None else int(time.time())),
        "type": "text",
        "text": {"body": text},
    }


def button_reply_message(
    user: str, button_id: str, title: str, *, wamid: str | None = None
) -> dict[str, Any]:
    """The user tapping a reply button (``button_id``) that reads ``title``."""
    return {
        "from": user,
        "id": wamid or new_wamid(),
        "timestamp": str(int(time.time())),
        "type": "interactive",
        "interactive": {"type": "button_reply", "button_reply": {"id": button_id, "title": title}},
    }


def image_message(
    user: str, *, caption: str | None = None, wamid: str | None = None
) -> dict[str, Any]:
    """The user sending a photo (Meta's media id; a caption when given)."""
    image: dict[str, Any] = {"id": "1234567890123456", "mime_type": "image/jpeg", "sha256": "x"}
    if caption is not None:
        image["caption"] = caption
    return {
        "from": user,
        "id": wamid or new_wamid(),
        "timestamp": str(int(time.time())),
        "type": "image",
        "image": image,
    }


def messages_change(
    messages: list[dict[str, Any]] | None = None,
    *,
    statuses: list[dict[str, Any]] | None = None,
    phone_number_id: str = DEFAULT_PHONE_NUMBER_ID,
    name: str = "Simulated User",
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": DEFAULT_DISPLAY_NUMBER,
            "phone_number_id": phone_number_id,
        },
    }
    if messages:
        users = sorted({m["from"] for m in messages if "from" in m})
        value["contacts"] = [{"profile": {"name": name}, "wa_id": u} for u in users]
        value["messages"] = messages
    if statuses:
        value["statuses"] = statuses
    return {"value": value, "field": "messages"}


def standby_change(
    messages: list[dict[str, Any]], *, phone_number_id: str = DEFAULT_PHONE_NUMBER_ID
) -> dict[str, Any]:
    """A ``standby`` change: a copy of the users' ``messages`` of a thread another app owns
    (Conversation Routing), in the ``messages`` field's value shape."""
    return {**messages_change(messages, phone_number_id=phone_number_id), "field": "standby"}


def handover_change(
    user: str,
    control: Literal["taken", "passed"],
    *,
    phone_number_id: str = DEFAULT_PHONE_NUMBER_ID,
    metadata: str | None = None,
) -> dict[str, Any]:
    """A ``messaging_handovers`` notice: another app took ``user``'s thread (``taken``), or
    it was passed to this app (``passed``). ``type`` naming the object beside it is Meta's;
    where the number and the user sit is as ``hiker.ingress.handovers`` reads them (Meta's
    stored reference did not show it)."""
    name = f"control_{control}"
    return {
        "field": "messaging_handovers",
        "value": {
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": DEFAULT_DISPLAY_NUMBER,
                "phone_number_id": phone_number_id,
            },
            "type": name,
            "sender": {"phone_number": user},
            "timestamp": str(int(time.time())),
            name: {} if metadata is None else {"metadata": metadata},
        },
    }


def webhook_body(*changes: dict[str, Any], entry_id: str = "100000000000000") -> dict[str, Any]:
    """One entry holding ``changes``; for several entries, build the dict directly."""
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": entry_id, "changes": list(changes)}],
    }


def template_id(name: str, language: str) -> int:
    """A stable template id for ``name`` in ``language`` (Meta's ids are integers), so that
    successive simulated webhooks name the same template."""
    digest = hashlib.sha256(f"{name}\n{language}".encode()).hexdigest()
    return 10**15 + int(digest[:12], 16) % 10**15


def template_change(
    name: str,
    language: str = "en_US",
    *,
    event: str | None = None,
    quality: str | None = None,
    category: str | None = None,
    reason: str = "NONE",
) -> dict[str, Any]:
    """One of Meta's template webhooks (``event``: ``message_template_status_update``;
    ``quality``: ``message_template_quality_update``; ``category``:
    ``template_category_update``), for ``webhook_body``; exactly one of the three is given."""
    if sum(x is not None for x in (event, quality, category)) != 1:
        raise ValueError("give exactly one of event, quality, category")
    value: dict[str, Any] = {
        "message_template_id": template_id(name, language),
        "message_template_name": name,
        "message_template_language": language,
    }
    if event is not None:
        value |= {"event": event, "reason": reason}
        return {"field": "message_template_status_update", "value": value}
    if quality is not None:
        value |= {"previous_quality_score": "UNKNOWN", "new_quality_score": quality}
        return {"field": "message_template_quality_update", "value": value}
    value |= {"new_category": category}
    return {"field": "template_category_update", "value": value}


def template_webhook(change: dict[str, Any], entry_id: str = "100000000000000") -> dict[str, Any]:
    """A template webhook body: its entry carries Meta's ``time`` of the change."""
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": entry_id, "time": int(time.time()), "changes": [change]}],
    }


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


async def post_signed(
    session: aiohttp.ClientSession, url: str, body: bytes, app_secret: str
) -> tuple[int, str]:
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(app_secret.encode(), body),
    }
    async with session.post(url, data=body, headers=headers) as response:
        return response.status, await response.text()


async def simulate(
    url: str,
    user: str,
    text: str,
    app_secret: str,
    phone_number_id: str,
    wamid: str | None,
    button: str | None = None,
    *,
    handover: Literal["taken", "passed"] | None = None,
    standby: bool = False,
) -> tuple[int, str, str]:
    """Post ``text`` from ``user`` (or, with ``button``, a tap on the button of that id; with
    ``standby``, as a standby copy); with ``handover``, a routing notice instead. The third
    value is the message's wamid, or the notice's field."""
    if handover is not None:
        change = handover_change(user, handover, phone_number_id=phone_number_id)
        said = change["field"]
    else:
        message = (
            button_reply_message(user, button, text, wamid=wamid)
            if button
            else text_message(user, text, wamid=wamid)
        )
        change = (
            standby_change([message], phone_number_id=phone_number_id)
            if standby
            else messages_change([message], phone_number_id=phone_number_id)
        )
        said = message["id"]
    body = encode(webhook_body(change))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        status, answer = await post_signed(session, url, body, app_secret)
    return status, answer, said


async def simulate_template(url: str, app_secret: str, change: dict[str, Any]) -> tuple[int, str]:
    """Post one template webhook (``template_change``), signed."""
    body = encode(template_webhook(change))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        return await post_signed(session, url, body, app_secret)
