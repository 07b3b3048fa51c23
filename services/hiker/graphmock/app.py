"""Graph API stand-in: answers like Graph, records what was sent, and plays scripted faults.

- ``POST /{version}/{phone_number_id}/messages``: accepted (200 with a message id) unless a fault
  is scripted for the recipient; the bearer token is checked when one is configured. As Graph,
  a phone number goes in ``to`` and a business-scoped user id in ``recipient``: a body with both,
  neither, or a BSUID in ``to`` is refused (400, code 100).
- ``GET /{version}/{phone_number_id}``: the phone number's details, as Graph answers them.
- ``GET /_mock/requests``: every request that reached the mock outside ``/_mock/`` (method,
  path as received, query), answered or not: what the sender called, endpoints it should not have
  included.
- ``GET /_mock/messages[?to=...]``: what was accepted (``to`` and ``recipient`` apart, a
  readable ``text`` and the whole ``payload``; ``?to=`` matches either); ``DELETE
  /_mock/messages`` forgets it. Read receipts are answered ``{"success": true}`` and listed
  apart, at ``GET /_mock/receipts``.
- ``POST /_mock/faults`` ``{"to": "...", "responses": [{"status": 500, "code": 1,
  "retry_after": 1, "delay": 0.5}, ...]}``: the next calls for ``to`` (any recipient when
  omitted; ``"receipts"`` for read receipts) get these answers, in order, before the mock
  accepts again.
- Statuses (``graphmock.statuses``), with ``HIKER_GRAPH_MOCK_WEBHOOK_URL``: each accepted message
  is reported ``sent`` then ``delivered`` (or ``failed``: the reserved range ``1555099xxxx``, or
  a fault ``{"status": 200, "failed_status": 131049}``), signed, with ``pricing`` and the
  send's ``biz_opaque_callback_data``.
- Media (``graphmock.media``): ``POST /{version}/{phone_number_id}/media`` uploads, ``GET
  /{version}/{media-id}`` describes with a download URL, the URL answers the bytes; ``POST
  /_mock/media/{media-id}/expire`` expires an id.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any, Unpack

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hiker.core import kernel
from hiker.core.identity import is_bsuid
from hiker.core.kernel import OPS_APP, Kit, Parts, Plan, Serve, Service
from hiker.core.settings import GraphMockSettings, parse_token_list
from hiker.graphmock import media
from hiker.graphmock.statuses import UNDELIVERABLE, StatusReporter, fails_later

__all__ = ["OPS_APP", "SERVICE", "SHELF", "STATE", "create_app"]

log = logging.getLogger(__name__)

_ANY = "*"
# What ``POST /_mock/faults`` names as ``to`` to script the answers to read receipts.
RECEIPTS = "receipts"


class Fault(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: int = Field(ge=200, le=599)
    code: int | None = None
    message: str = "scripted failure"
    retry_after: float | None = None
    delay: float = Field(default=0.0, ge=0, le=120)
    # Accepted (a 2xx), then reported failed with this Meta error code (a status webhook).
    failed_status: int | None = None


class FaultScript(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str | None = None
    responses: list[Fault] = Field(min_length=1)


@dataclass
class MockState:
    sent: list[dict[str, Any]] = field(default_factory=list)
    receipts: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    faults: dict[str, deque[Fault]] = field(default_factory=lambda: defaultdict(deque))
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def next_fault(self, to: str, *, any_recipient: bool = True) -> Fault | None:
        for key in (to, _ANY) if any_recipient else (to,):
            queue = self.faults.get(key)
            if queue:
                return queue.popleft()
        return None


def readable(payload: dict[str, Any]) -> str:
    """What a person would read of a sent message: its text, or a short description."""
    kind = payload.get("type", "text")
    content = payload[kind]
    if kind == "text":
        return str(content["body"])
    if kind == "interactive":
        return str(content["body"]["text"])
    if kind == "template":
        return f"[template {content['name']} {content['language']['code']}]"
    if kind in ("image", "video", "document"):
        return str(content.get("caption") or f"[{kind} {content.get('link') or content['id']}]")
    if kind in ("audio", "sticker"):
        return f"[{kind} {content.get('link') or content['id']}]"
    if kind == "reaction":
        return f"[reaction {content['emoji']} to {content['message_id']}]"
    if kind == "location":
        return f"[location {content['latitude']},{content['longitude']}]"
    if kind == "contacts":
        return f"[contacts {len(content)}]"
    raise KeyError(kind)


STATE = web.AppKey("state", MockState)
# The media uploaded, and the clock that expires them (tests move it).
SHELF = web.AppKey("media_shelf", media.MediaShelf)


def _graph_error(status: int, code: int | None, message: str) -> web.Response:
    return web.json_response(
        {
            "error": {
                "message": message,
                "type": "OAuthException",
                "code": code if code is not None else status,
                "fbtrace_id": "mock",
            }
        },
        status=status,
    )


def build(kit: Kit[GraphMockSettings]) -> Plan:
    settings, registry = kit.settings, kit.registry
    accepted = Counter(
        "hiker_graph_mock_messages", "Messages the Graph mock accepted.", registry=registry
    )
    answered = Counter(
        "hiker_graph_mock_faults", "Scripted faults the Graph mock played.", registry=registry
    )
    state = MockState()
    token = settings.access_token
    per_number = (
        parse_token_list(settings.access_tokens.get_secret_value())
        if settings.access_tokens
        else {}
    )

    shelf = media.MediaShelf()
    reporter = (
        StatusReporter(
            kit.client_session(timeout=aiohttp.ClientTimeout(total=10)),
            settings.graph_mock_webhook_url,
            settings.app_secret.get_secret_value(),
        )
        if settings.graph_mock_webhook_url is not None and settings.app_secret is not None
        else None
    )

    def authorized(request: web.Request, number: str | None = None) -> bool:
        # As Graph: a phone number answers only to a token of its own business account.
        number = number if number is not None else request.match_info["phone_number_id"]
        expected_token = per_number.get(number, token)
        if expected_token is None:
            return True
        expected = f"Bearer {expected_token.get_secret_value()}".encode()
        return hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected)

    async def send_message(request: web.Request) -> web.Response:
        if not authorized(request):
            return _graph_error(401, 190, "Error validating access token")
        try:
            payload = await request.json()
            if payload.get("status") == "read":
                return await mark_read(request, str(payload["message_id"]), payload)
            to, recipient = _address_fields(payload)
            text = readable(payload)
        except (ValueError, KeyError, TypeError):
            return _graph_error(400, 100, "Invalid parameter")
        address = to if to is not None else str(recipient)
        fault = state.next_fault(address)
        if fault is not None:
            answered.inc()
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status >= 300:
                response = _graph_error(fault.status, fault.code, fault.message)
                if fault.retry_after is not None:
                    response.headers["Retry-After"] = str(fault.retry_after)
                return response
        failed = fault.failed_status if fault is not None else None
        if failed is None and fails_later(address):
            failed = UNDELIVERABLE
        wamid = f"wamid.MOCK{next(state.ids):010d}"
        record = {
            "id": wamid,
            "phone_number_id": request.match_info["phone_number_id"],
            # Apart, as Graph reads them: a phone number's ``to``, a BSUID's ``recipient``.
            "to": to,
            "recipient": recipient,
            "type": payload.get("type", "text"),
            "text": text,
            "payload": payload,
            "accepted_at": time.time(),
            # The error code its failed status will report, when it is to fail later.
            "fails_with": failed,
        }
        state.sent.append(record)
        if reporter is not None:
            reporter.report(request.match_info["phone_number_id"], wamid, payload, failed)
        accepted.inc()
        log.info("graph mock accepted a message", extra={"to": address, "text": text, "id": wamid})
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to} if to else {"input": recipient}],
                "messages": [{"id": wamid}],
            }
        )

    async def mark_read(
        request: web.Request, message_id: str, payload: dict[str, Any]
    ) -> web.Response:
        fault = state.next_fault(RECEIPTS, any_recipient=False)
        if fault is not None and fault.status >= 300:
            answered.inc()
            return _graph_error(fault.status, fault.code, fault.message)
        state.receipts.append(
            {
                "message_id": message_id,
                "phone_number_id": request.match_info["phone_number_id"],
                "typing": "typing_indicator" in payload,
                "accepted_at": time.time(),
            }
        )
        return web.json_response({"success": True})

    async def list_receipts(_: web.Request) -> web.Response:
        return web.json_response(state.receipts)

    async def upload_media(request: web.Request) -> web.Response:
        if not authorized(request):
            return _graph_error(401, 190, "Error validating access token")
        try:
            mime_type, data = await media.read_upload(request)
        except ValueError as exc:
            return _graph_error(400, 100, f"Invalid parameter: {exc}")
        medium = shelf.add(request.match_info["phone_number_id"], mime_type, data)
        return web.json_response({"id": medium.id})

    async def describe_media(request: web.Request, medium: media.Medium) -> web.Response:
        if not authorized(request, medium.phone_number_id):
            return _graph_error(401, 190, "Error validating access token")
        fault = state.next_fault(media.MEDIA, any_recipient=False)
        if fault is not None:
            answered.inc()
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status >= 300:
                return _graph_error(fault.status, fault.code, fault.message)
        return media.describe(request, medium, shelf.clock())

    async def download_media(request: web.Request) -> web.Response:
        medium = shelf.live(request.query.get("mid", ""))
        if medium is not None and not authorized(request, medium.phone_number_id):
            return _graph_error(401, 190, "Error validating access token")
        return media.download(request, shelf)

    async def expire_media(request: web.Request) -> web.Response:
        medium = shelf.media.get(request.match_info["media_id"])
        if medium is None:
            return web.json_response({"error": "no such media id"}, status=404)
        medium.expires_at = shelf.clock()
        return web.json_response({"expired": medium.id})

    async def phone_number(request: web.Request) -> web.Response:
        # Graph's node ids share one space: a media id is described as a medium.
        node = request.match_info["phone_number_id"]
        if node in shelf.media:
            medium = shelf.live(node)
            return await describe_media(request, medium) if medium else media.not_found(node)
        if not authorized(request):
            return _graph_error(401, 190, "Error validating access token")
        return web.json_response(
            {
                "id": request.match_info["phone_number_id"],
                "display_phone_number": "+1 555-000-0000",
                "verified_name": "Hiker Graph mock",
                "quality_rating": "GREEN",
            }
        )

    async def list_sent(request: web.Request) -> web.Response:
        to = request.query.get("to")
        return web.json_response(
            [m for m in state.sent if to is None or to in (m["to"], m["recipient"])]
        )

    async def list_requests(_: web.Request) -> web.Response:
        return web.json_response(state.requests)

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/_mock/"):
            state.requests.append(
                {"method": request.method, "path": request.raw_path, "at": time.time()}
            )
        return await handler(request)

    async def clear_sent(_: web.Request) -> web.Response:
        state.sent.clear()
        state.receipts.clear()
        state.requests.clear()
        state.faults.clear()
        return web.json_response({"cleared": True})

    async def script_faults(request: web.Request) -> web.Response:
        try:
            script = FaultScript.model_validate(await request.json())
        except (ValueError, ValidationError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        state.faults[script.to or _ANY].extend(script.responses)
        return web.json_response({"scripted": len(script.responses)})

    app = web.Application(middlewares=[record])
    app[STATE] = state
    app[SHELF] = shelf
    app.router.add_post("/{version}/{phone_number_id}/messages", send_message)
    # Meta's Marketing Messages API takes a template send's body at its own path.
    app.router.add_post("/{version}/{phone_number_id}/marketing_messages", send_message)
    app.router.add_post("/{version}/{phone_number_id}/media", upload_media)
    app.router.add_get("/whatsapp_business/attachments/", download_media)
    app.router.add_post("/_mock/media/{media_id}/expire", expire_media)
    app.router.add_get("/_mock/messages", list_sent)
    app.router.add_get("/_mock/receipts", list_receipts)
    app.router.add_get("/_mock/requests", list_requests)
    app.router.add_delete("/_mock/messages", clear_sent)
    app.router.add_post("/_mock/faults", script_faults)
    app.router.add_get("/{version}/{phone_number_id}", phone_number)

    async def always_ready() -> bool:
        return True

    return Plan(
        topology=None,
        serves=Serve(app, settings.graph_mock_host, settings.graph_mock_port),
        readiness={"self": always_ready},
    )


SERVICE = Service("graph-mock", GraphMockSettings, build)


def create_app(settings: GraphMockSettings, **parts: Unpack[Parts]) -> web.Application:
    """The mock's Graph endpoints; its operations app (metrics, health) at ``app[OPS_APP]``."""
    return kernel.create_app(SERVICE, settings, **parts)


def _address_fields(payload: dict[str, Any]) -> tuple[str | None, str | None]:
    """(``to``, ``recipient``) of a send; ValueError where Graph refuses them: both or neither
    given, or a business-scoped user id in ``to`` (Graph routes those by ``recipient`` only)."""
    to, recipient = payload.get("to"), payload.get("recipient")
    if (to is None) == (recipient is None):
        raise ValueError("exactly one of to and recipient")
    if to is not None and (not isinstance(to, str) or is_bsuid(to)):
        raise ValueError("to takes a phone number")
    if recipient is not None and not isinstance(recipient, str):
        raise ValueError("recipient is a string")
    return to, recipient
