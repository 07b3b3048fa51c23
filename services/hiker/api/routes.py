"""HTTP edge of the api: the bearer token, query and body parsing, and what each outcome is
answered with (Graph-shaped problems for errors). Deciding is the handlers' (``sending``) and
the store's; nothing here knows SQL."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Final, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel

from hiker.api import cursors, handoff, templates
from hiker.api.auth import (
    CALLER,
    Forbidden,
    caller_of,
    check_number,
    check_scope,
)

# The composition root sets the tokens through these (re-exported: it imports them from here).
from hiker.api.auth import TOKENS as TOKENS
from hiker.api.db.delivery import DeliveryRecords
from hiker.api.db.repository import RecordStore
from hiker.api.media import KEEPER, get_media
from hiker.api.metrics import ApiMetrics
from hiker.api.openapi import IDEMPOTENCY_KEY_MAX, LIMIT_DEFAULT, LIMIT_MAX, document
from hiker.api.sending import (
    PHONE_NUMBER_ID_MAX,
    RECIPIENT_MAX,
    InvalidRequest,
    KeyInFlight,
    KeyReused,
    SendAcceptor,
    parse_send,
)
from hiker.api.views import (
    Accepted,
    ConversationItem,
    ConversationPage,
    ErrorBody,
    ErrorData,
    FieldProblem,
    MessageItem,
    MessagePage,
    Problem,
)
from hiker.core.errors import Unavailable, classify

log = logging.getLogger(__name__)

STORE = web.AppKey("api_store", RecordStore)
ACCEPTOR = web.AppKey("api_acceptor", SendAcceptor)
DELIVERY = web.AppKey("api_delivery", DeliveryRecords)
METRICS = web.AppKey("api_metrics", ApiMetrics)
# Set once the schema is at head: until then the routes that read or write answer 503.
SCHEMA_READY = web.AppKey("api_schema_ready", asyncio.Event)

OPENAPI_PATH: Final = "/v1/openapi.json"
# Graph's own codes, so that a client that reads Graph's errors reads these too.
CODE_TOKEN: Final = 190
CODE_PARAMETER: Final = 100
CODE_PERMISSION: Final = 10
CODE_UNAVAILABLE: Final = 2
RETRY_AFTER_SECONDS: Final = "5"
# Far above any one action (a list of 10 rows, a template's components).
MAX_BODY_BYTES: Final = 64 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadRequest(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def problem(
    status: int,
    message: str,
    *,
    code: int = CODE_PARAMETER,
    fields: Sequence[tuple[str, str]] = (),
    retry_after: str | None = None,
) -> web.Response:
    data = (
        ErrorData(
            details=message,
            fields=[FieldProblem(field=where, message=what) for where, what in fields],
        )
        if fields
        else None
    )
    body = Problem(
        error=ErrorBody(message=message, type="OAuthException", code=code, error_data=data)
    )
    if retry_after is None and status == 503:
        retry_after = RETRY_AFTER_SECONDS
    headers = {"Retry-After": retry_after} if retry_after is not None else None
    return _json(body, status=status, headers=headers)


def _json(
    model: BaseModel, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=model.model_dump_json().encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    if resource is None:
        return "unmatched"
    return f"{request.method} {resource.canonical}"


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Metrics per route pattern (never the path: it holds a user's number); errors, the
    store's and the broker's included, become Graph-shaped problems."""
    started = time.perf_counter()
    route = _route_of(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = problem(exc.status, exc.reason, code=exc.status)
    except BadRequest as exc:
        response = problem(400, str(exc), fields=[(exc.field, exc.message)])
    except Forbidden as exc:
        fields = [(exc.field, exc.message)] if exc.field else ()
        response = problem(403, exc.message, code=CODE_PERMISSION, fields=fields)
    except Exception as exc:
        verdict = classify(exc)
        if not isinstance(verdict, Unavailable):
            log.error("request failed", exc_info=exc, extra={"route": route})
            response = problem(500, "internal error", code=1)
        else:
            log.warning(
                "request refused: %s unavailable",
                verdict.dependency,
                extra={"route": route, "error_class": verdict.error_class},
            )
            response = problem(
                503, f"{verdict.dependency} temporarily unavailable", code=CODE_UNAVAILABLE
            )
    metrics = request.app[METRICS]
    metrics.requests.labels(route, str(response.status)).inc()
    if route != "unmatched":
        metrics.latency.labels(route).observe(time.perf_counter() - started)
    return response


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every route, the OpenAPI document included, needs ``Authorization: Bearer <token>``
    (the document tells a stranger what there is to try), and the scope the route needs
    (``auth.ROUTE_SCOPES``); 401 without a valid token, 403 without the scope."""
    caller = caller_of(request.app, request.headers.get("Authorization", ""))
    if caller is None:
        response = problem(401, "a valid bearer token is required", code=CODE_TOKEN)
        response.headers["WWW-Authenticate"] = 'Bearer realm="hiker"'
        return response
    try:
        check_scope(caller, _route_of(request))
    except Forbidden as exc:
        return problem(403, exc.message, code=CODE_PERMISSION)
    request[CALLER] = caller
    if request.path != OPENAPI_PATH and not request.app[SCHEMA_READY].is_set():
        return problem(
            503, "the database is not ready yet (schema being upgraded)", code=CODE_UNAVAILABLE
        )
    return await handler(request)


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return LIMIT_DEFAULT
    # isdigit alone takes "²", which int() refuses, and int() refuses 4,301 digits or more.
    digits = raw.isascii() and raw.isdigit() and len(raw) <= len(str(LIMIT_MAX))
    if not digits or not 1 <= int(raw) <= LIMIT_MAX:
        raise BadRequest("limit", f"must be a whole number from 1 to {LIMIT_MAX}")
    return int(raw)


def _phone_number_id(value: str, field: str) -> str:
    """A phone number id as Meta gives them: ASCII digits (anything else would match nothing,
    and a NUL would be the database's error)."""
    if not (value.isascii() and value.isdigit() and len(value) <= PHONE_NUMBER_ID_MAX):
        raise BadRequest(field, f"must be at most {PHONE_NUMBER_ID_MAX} digits: a phone number id")
    return value


def _user(value: str) -> str:
    if not (value.isprintable() and 0 < len(value) <= RECIPIENT_MAX):
        raise BadRequest("user", f"must be 1 to {RECIPIENT_MAX} printable characters")
    return value


_Cursor = TypeVar("_Cursor")


def _cursor(request: web.Request, decode: Callable[[str], _Cursor]) -> _Cursor | None:
    """The page's ``cursor`` query decoded, None without one; 400 when it is not one of ours."""
    raw = request.query.get("cursor")
    if raw is None:
        return None
    try:
        return decode(raw)
    except cursors.BadCursor as exc:
        raise BadRequest("cursor", str(exc)) from None


async def list_conversations(request: web.Request) -> web.Response:
    """Conversations, latest first. A token limited to some numbers that names none gets the
    conversations of its numbers (filtered: a client pages through what it may read without
    knowing its limits); one that names a number outside them gets 403 (refused: an empty
    page would say "no conversations" where the truth is "not yours")."""
    limit = _limit(request)
    after = _cursor(request, cursors.decode_conversations)
    given = request.query.get("phone_number_id")
    number = _phone_number_id(given, "phone_number_id") if given else None
    if number is not None:
        check_number(request, number, "phone_number_id")
    rows = await request.app[STORE].conversations(
        number, limit + 1, after, among=request[CALLER].numbers
    )
    page, more = rows[:limit], len(rows) > limit
    last = page[-1] if more else None
    next_cursor = (
        cursors.encode(cursors.ConversationCursor(last.last_at_us, last.phone_number_id, last.user))
        if last is not None
        else None
    )
    # Who owns each: one Redis round trip for the page, where handoffs are kept.
    owners = await request.app[handoff.OWNERSHIP].read_many(
        [(r.phone_number_id, r.user) for r in page]
    )
    now = request.app[handoff.CLOCK]()
    items = [ConversationItem.of(r).owned(o, now) for r, o in zip(page, owners, strict=True)]
    return _json(ConversationPage(data=items, next_cursor=next_cursor))


async def list_messages(request: web.Request) -> web.Response:
    limit = _limit(request)
    after = _cursor(request, cursors.decode_messages)
    number = _phone_number_id(request.match_info["phone_number_id"], "phone_number_id")
    user = _user(request.match_info["user"])
    check_number(request, number, "phone_number_id")
    rows = await request.app[STORE].messages(number, user, limit + 1, after)
    page, more = rows[:limit], len(rows) > limit
    keeper = request.app.get(KEEPER)
    if keeper is not None:
        kept = await keeper.records.of_messages([r.wamid for r in page if r.wamid])
        page = [replace(r, media=kept.get(r.wamid or "")) for r in page]
    prices = await request.app[DELIVERY].prices_of([r.wamid for r in page if r.wamid])
    page = [replace(r, pricing=p.view()) if (p := prices.get(r.wamid or "")) else r for r in page]
    next_cursor = (
        cursors.encode(cursors.MessageCursor(page[-1].at_us, page[-1].id)) if more else None
    )
    return _json(MessagePage(data=[MessageItem.of(r) for r in page], next_cursor=next_cursor))


async def list_templates(request: web.Request) -> web.Response:
    """Message templates as Meta's webhooks last described them; a business account's, so a
    token limited to phone numbers (which name no account) may not read them."""
    if request[CALLER].numbers is not None:
        raise Forbidden("templates belong to a business account: this token is limited to numbers")
    limit = _limit(request)
    after = _cursor(request, cursors.decode_templates)
    try:
        status = templates.status_query(request)
    except ValueError as exc:
        raise BadRequest("status", str(exc)) from None
    rows = await request.app[DELIVERY].templates(
        limit + 1, after.template_id if after else None, status
    )
    page, more = rows[:limit], len(rows) > limit
    next_cursor = cursors.encode(cursors.TemplateCursor(page[-1].template_id)) if more else None
    items = [templates.TemplateItem.of(row) for row in page]
    return _json(templates.TemplatePage(data=items, next_cursor=next_cursor))


async def send_message(request: web.Request) -> web.Response:
    key = request.headers.get("Idempotency-Key", "")
    if not key:
        raise BadRequest("Idempotency-Key", "the header is required: a key unique to this send")
    if len(key) > IDEMPOTENCY_KEY_MAX or not key.isprintable() or not key.isascii():
        raise BadRequest(
            "Idempotency-Key", f"printable ASCII of at most {IDEMPOTENCY_KEY_MAX} characters"
        )
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise BadRequest("body", "not valid JSON") from None
    try:
        send = parse_send(body)
    except InvalidRequest as exc:
        return problem(422, str(exc), fields=exc.problems)
    check_number(request, send.phone_number_id, "phone_number_id")
    try:
        accepted = await request.app[ACCEPTOR].accept(send, key)
    except KeyReused:
        return problem(
            422,
            "this Idempotency-Key was used for another request; use a new key for a new send",
            fields=[("Idempotency-Key", "used before with another body")],
        )
    except KeyInFlight as exc:
        return problem(
            409,
            "a request with this Idempotency-Key is in flight; retry it after Retry-After seconds",
            fields=[("Idempotency-Key", "in use by a request in flight")],
            retry_after=str(exc.retry_after),
        )
    if accepted.taken_over:
        log.warning(
            "idempotency key taken over: an earlier request held it past its lease "
            "(crashed or stalled) without publishing; published now",
            extra={"send_id": accepted.send_id, "to": send.to},
        )
    log.info(
        "send accepted",
        extra={
            "send_id": accepted.send_id,
            "to": send.to,
            "repeated": accepted.repeated,
            # Which entry's token: an operator rotating one sees whether the old is still used.
            "caller": request[CALLER].name,
        },
    )
    return _json(Accepted(id=accepted.send_id), status=202)


async def hand_over(request: web.Request) -> web.Response:
    """A person owns the conversation for ``minutes``: the bot neither answers nor follows up
    until then or until ``DELETE`` gives it back; sends through ``POST /v1/messages`` go out."""
    number = _phone_number_id(request.match_info["phone_number_id"], "phone_number_id")
    user = _user(request.match_info["user"])
    check_number(request, number, "phone_number_id")
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise BadRequest("body", "not valid JSON") from None
    try:
        given = handoff.parse_handoff(body)
    except handoff.HandoffInvalid as exc:
        return problem(422, str(exc), fields=[(exc.field, exc.message)])
    now = request.app[handoff.CLOCK]()
    owned = await request.app[handoff.OWNERSHIP].hand_to_person(
        number, user, seconds=given.minutes * 60, reason=given.reason, now=now
    )
    request.app[METRICS].handoffs.labels(handoff.WAY_IN).inc()
    until = owned.until or 0.0
    log.info(
        "conversation handed to a person",
        extra={"user": user, "until": until, "caller": request[CALLER].name},
    )
    return _json(handoff.Owner(owner="human", until=handoff.iso_seconds(until)))


async def give_back(request: web.Request) -> web.Response:
    """The bot answers the conversation again (its idle timer starts with the next message)."""
    number = _phone_number_id(request.match_info["phone_number_id"], "phone_number_id")
    user = _user(request.match_info["user"])
    check_number(request, number, "phone_number_id")
    await request.app[handoff.OWNERSHIP].give_back(number, user, now=request.app[handoff.CLOCK]())
    log.info("conversation given back to the bot", extra={"user": user})
    return web.Response(body=b'{"owner":"bot"}', content_type="application/json")


async def openapi(_: web.Request) -> web.Response:
    return web.Response(body=orjson.dumps(document()), content_type="application/json")


def add_api_routes(app: web.Application) -> None:
    app.router.add_get("/v1/conversations", list_conversations)
    app.router.add_get("/v1/conversations/{phone_number_id}/{user}/messages", list_messages)
    app.router.add_post("/v1/messages", send_message)
    app.router.add_get("/v1/media/{media_id}", get_media)
    app.router.add_get("/v1/templates", list_templates)
    app.router.add_post(handoff.PATH, hand_over)
    app.router.add_delete(handoff.PATH, give_back)
    app.router.add_get(OPENAPI_PATH, openapi)
