"""Graph API adapter: ``POST /{version}/{phone_number_id}/messages`` with the bearer token."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import orjson
from yarl import URL

from hiker.core.actions import (
    AnyAction,
    Audio,
    Buttons,
    Contacts,
    Document,
    Image,
    ListMenu,
    Location,
    MarkRead,
    Reaction,
    Section,
    Sticker,
    Template,
    Text,
    Video,
)
from hiker.core.graph_ids import is_phone_number_id
from hiker.core.identity import recipient_field
from hiker.core.settings import AccessTokens
from hiker.sender.retry import BAD_PHONE_NUMBER_ID, NO_TOKEN, GraphOutcome

# Kept with a parked send whose phone number id is not one (see ``GraphClient.send``).
_NOT_AN_ID_ERROR: Final = {
    "message": "phone_number_id is not a Graph phone number id (1 to 32 ASCII digits): "
    "Graph was not called",
    "type": "HikerRefused",
}
# Meta's limit on ``biz_opaque_callback_data`` (the send endpoint's reference: "Maximum 512
# characters"). A longer key is not sent at all rather than cut: a cut one could name another
# send, and its statuses still join by Graph's message id once the sender recorded it.
CALLBACK_DATA_MAX: Final = 512


@dataclass(frozen=True)
class GraphCall:
    outcome: GraphOutcome
    latency_seconds: float
    # Graph's error object as returned, kept with parked messages for the operator.
    error: dict[str, Any] | None = None


class GraphClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        api_version: str,
        tokens: AccessTokens,
    ) -> None:
        self._session = session
        # yarl joins segments: each is quoted as one, never read as a path or a query.
        self._versioned = URL(base_url) / api_version
        self._tokens = tokens
        # Keyed by token, not by phone number: the tokens are what the operator configured (a
        # few), while the numbers come from messages (the default token serves any number).
        self._headers: dict[str, dict[str, str]] = {}

    async def send(
        self,
        phone_number_id: str,
        to: str,
        action: AnyAction,
        *,
        callback_data: str | None = None,
        marketing: bool = False,
    ) -> GraphCall:
        """One ``POST {graph}/{version}/{phone_number_id}/messages`` for ``action``, carrying
        ``callback_data`` (the action's key) as ``biz_opaque_callback_data``; with ``marketing``
        (a marketing template), ``.../marketing_messages``, Meta's Marketing Messages API, which
        takes the same body as a template send (Meta: "Send marketing messages",
        developers.facebook.com/documentation/business-messaging/whatsapp/
        marketing-messages/send-marketing-messages).

        A ``phone_number_id`` that is not digits is refused without calling Graph (parked): as
        a URL segment it could name another endpoint, and it picks the token sent.
        """
        if not is_phone_number_id(phone_number_id):
            refused = GraphOutcome(http_status=None, failure=BAD_PHONE_NUMBER_ID)
            return GraphCall(refused, 0.0, dict(_NOT_AN_ID_ERROR))
        url = (
            self._versioned / phone_number_id / ("marketing_messages" if marketing else "messages")
        )
        headers = self._headers_for(phone_number_id)
        if headers is None:
            # Nothing to call Graph with: an operator must configure it (parked, not retried).
            return GraphCall(GraphOutcome(http_status=None, failure=NO_TOKEN), 0.0)
        payload = orjson.dumps(action_payload(to, action, callback_data=callback_data))
        started = time.perf_counter()
        try:
            async with self._session.post(url, data=payload, headers=headers) as response:
                body = await _json(response)
                latency = time.perf_counter() - started
                return _interpret(response.status, response.headers, body, latency)
        except TimeoutError:
            failure = "timeout"
        except aiohttp.ClientError:
            failure = "connection_error"
        return GraphCall(
            GraphOutcome(http_status=None, failure=failure), time.perf_counter() - started
        )

    def _headers_for(self, phone_number_id: str) -> dict[str, str] | None:
        token = self._tokens.for_number(phone_number_id)
        if token is None:
            return None
        value = token.get_secret_value()
        headers = self._headers.get(value)
        if headers is None:
            headers = self._headers[value] = {
                "Authorization": f"Bearer {value}",
                "Content-Type": "application/json",
            }
        return headers


def action_payload(
    to: str, action: AnyAction, *, callback_data: str | None = None
) -> dict[str, Any]:
    """The Graph request body sending ``action`` to ``to``, in the shape Meta's schema gives.

    ``to`` is a phone number (Graph's ``to``) or a business-scoped user id (Graph's
    ``recipient``, which Graph refuses in ``to``); a read receipt names neither.
    ``callback_data`` goes in ``biz_opaque_callback_data``, which Meta returns on every status
    of the message: a status joins its send by it (a receipt is no message: none).
    """
    if isinstance(action, MarkRead):
        receipt: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": action.message_id,
        }
        if action.typing:
            receipt["typing_indicator"] = {"type": "text"}
        return receipt
    kind, content = _content(action)
    payload: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        recipient_field(to): to,
        "type": kind,
        kind: content,
    }
    if action.reply_to is not None:
        payload["context"] = {"message_id": action.reply_to}
    if callback_data is not None and 0 < len(callback_data) <= CALLBACK_DATA_MAX:
        payload["biz_opaque_callback_data"] = callback_data
    return payload


def _content(action: AnyAction) -> tuple[str, Any]:
    """The ``type`` of the Graph message for ``action``, and its object under that name."""
    match action:
        case Text():
            return "text", {"preview_url": action.preview_url, "body": action.body}
        case Buttons():
            buttons = [
                {"type": "reply", "reply": {"id": o.id, "title": o.title}} for o in action.options
            ]
            return "interactive", _interactive(
                "button", action.body, {"buttons": buttons}, action.header, action.footer
            )
        case ListMenu():
            sections = [_section(section) for section in action.sections]
            return "interactive", _interactive(
                "list",
                action.body,
                {"button": action.button, "sections": sections},
                action.header,
                action.footer,
            )
        case Image() | Video() | Audio() | Document() | Sticker():
            media: dict[str, Any] = (
                {"link": str(action.link)} if action.link is not None else {"id": action.id}
            )
            for name in ("caption", "filename"):
                value = getattr(action, name, None)
                if value is not None:
                    media[name] = value
            return action.type, media
        case Location():
            # Meta's examples send numbers where its schema says strings; the API takes numbers.
            location: dict[str, Any] = {"latitude": action.latitude, "longitude": action.longitude}
            for name in ("name", "address"):
                value = getattr(action, name)
                if value is not None:
                    location[name] = value
            return "location", location
        case Contacts():
            return "contacts", [
                contact.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
                for contact in action.contacts
            ]
        case Template():
            template: dict[str, Any] = {
                "name": action.name,
                "language": {"code": action.language, "policy": "deterministic"},
            }
            if action.components:
                template["components"] = list(action.components)
            return "template", template
        case Reaction():
            return "reaction", {"message_id": action.message_id, "emoji": action.emoji}
    raise TypeError(f"no Graph message for {type(action).__name__}")


def _interactive(
    kind: str, body: str, action: dict[str, Any], header: str | None, footer: str | None
) -> dict[str, Any]:
    interactive: dict[str, Any] = {"type": kind, "body": {"text": body}, "action": action}
    if header is not None:
        interactive["header"] = {"type": "text", "text": header}
    if footer is not None:
        interactive["footer"] = {"text": footer}
    return interactive


def _section(section: Section) -> dict[str, Any]:
    rows = []
    for row in section.rows:
        item = {"id": row.id, "title": row.title}
        if row.description:
            item["description"] = row.description
        rows.append(item)
    return {"title": section.title, "rows": rows} if section.title else {"rows": rows}


async def _json(response: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        body = orjson.loads(await response.read())
    except orjson.JSONDecodeError:
        return {}
    return body if isinstance(body, dict) else {}


def _interpret(status: int, headers: Any, body: dict[str, Any], latency: float) -> GraphCall:
    error = body.get("error") if isinstance(body.get("error"), dict) else None
    # A read receipt is answered {"success": true}: accepted, with no message id of its own.
    accepted = body.get("success") is True
    messages = body.get("messages")
    message_id = None
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        message_id = messages[0].get("id")
    code = error.get("code") if error else None
    return GraphCall(
        GraphOutcome(
            http_status=status,
            error_code=code if isinstance(code, int) else None,
            message_id=message_id if isinstance(message_id, str) else None,
            accepted=accepted,
            retry_after_seconds=_retry_after(headers.get("Retry-After")),
        ),
        latency,
        error,
    )


def _retry_after(value: str | None) -> float | None:
    # Graph sends delta-seconds; an HTTP date is rare enough to fall back to our own backoff.
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
