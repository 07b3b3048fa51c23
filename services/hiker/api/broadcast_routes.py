"""HTTP edge of broadcasts and opt-outs: ``/v1/broadcasts`` (create, read, pause, resume,
cancel, recipients by pages) and ``/v1/opt-outs``.

Creating one writes the broadcast and its recipients and answers: the sending is the
scheduler's (``api.scheduler``), never the request's.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web
from pydantic import BaseModel

from hiker.api import broadcasting, cursors
from hiker.api.auth import CALLER, check_number
from hiker.api.broadcast_views import (
    BroadcastAccepted,
    BroadcastView,
    OptOutItem,
    OptOutPage,
    RecipientItem,
    RecipientPage,
    StateView,
)
from hiker.api.db.broadcasts import BroadcastStore, KeyReused, NewBroadcast
from hiker.api.db.opt_outs import OptOutStore
from hiker.api.history import to_us
from hiker.api.openapi import IDEMPOTENCY_KEY_MAX
from hiker.api.routes import BadRequest, _limit, _phone_number_id, _user, problem

BROADCASTS_PATH: Final = "/v1/broadcasts"
BROADCAST_PATH: Final = "/v1/broadcasts/{broadcast_id}"
RECIPIENTS_PATH: Final = "/v1/broadcasts/{broadcast_id}/recipients"
OPT_OUTS_PATH: Final = "/v1/opt-outs"
OPT_OUT_PATH: Final = "/v1/opt-outs/{phone_number_id}/{user}"
# What each of pause, resume, cancel may follow, and where it leads.
TRANSITIONS: Final[dict[str, tuple[tuple[str, ...], str]]] = {
    "pause": (("running", "paused"), "paused"),
    "resume": (("paused", "running"), "running"),
    "cancel": (("running", "paused", "cancelled"), "cancelled"),
}
RECIPIENT_STATUSES: Final = frozenset(
    {"queued", "sending", "accepted", "sent", "delivered", "read", "failed", "parked", "skipped",
     "cancelled"}
)  # fmt: skip


@dataclass(frozen=True)
class BroadcastSetup:
    store: BroadcastStore
    opt_outs: OptOutStore
    # Marketing templates to Meta's Marketing Messages API (HIKER_MARKETING_MESSAGES_API).
    marketing_messages_api: bool
    max_bytes: int
    clock: Callable[[], float] = time.time


SETUP = web.AppKey("api_broadcasts", BroadcastSetup)


def _json(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(
        body=model.model_dump_json().encode(), status=status, content_type="application/json"
    )


async def _body(request: web.Request, most: int) -> bytes:
    """The body, refused (413) past ``most`` bytes, before it is all read when it says so."""
    if request.content_length is not None and request.content_length > most:
        raise web.HTTPRequestEntityTooLarge(max_size=most, actual_size=request.content_length)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(256 * 1024):
        size += len(chunk)
        if size > most:
            raise web.HTTPRequestEntityTooLarge(max_size=most, actual_size=size)
        chunks.append(chunk)
    return b"".join(chunks)


def _idempotency_key(request: web.Request) -> str:
    key = request.headers.get("Idempotency-Key", "")
    if not key:
        raise BadRequest("Idempotency-Key", "the header is required: a key unique to this one")
    if len(key) > IDEMPOTENCY_KEY_MAX or not key.isprintable() or not key.isascii():
        raise BadRequest(
            "Idempotency-Key", f"printable ASCII of at most {IDEMPOTENCY_KEY_MAX} characters"
        )
    return key


async def create_broadcast(request: web.Request) -> web.Response:
    setup = request.app[SETUP]
    key = _idempotency_key(request)
    body = await _body(request, setup.max_bytes)
    content_type = request.content_type
    try:
        if content_type == "text/csv":
            parsed = broadcasting.parse_csv(body, dict(request.query))
        else:
            parsed = broadcasting.parse_json(body)
    except broadcasting.InvalidBroadcast as exc:
        return problem(422, str(exc), fields=exc.problems)
    check_number(request, parsed.phone_number_id, "phone_number_id")
    now = setup.clock()
    kind = (
        broadcasting.MARKETING_KIND
        if parsed.marketing and setup.marketing_messages_api
        else broadcasting.KIND
    )
    broadcast_id = broadcasting.broadcast_id_of(key)
    try:
        await setup.store.create(
            NewBroadcast(
                id=broadcast_id,
                idempotency_key=key,
                request_hash=broadcasting.request_hash(body, content_type),
                request=parsed,
                kind=kind,
                start_at_us=to_us(max(now, parsed.start_at or now)),
                created_at_us=to_us(now),
            )
        )
    except KeyReused:
        return problem(
            422,
            "this Idempotency-Key was used for another broadcast; use a new key",
            fields=[("Idempotency-Key", "used before with another body")],
        )
    accepted = BroadcastAccepted(
        id=broadcast_id, recipients=len(parsed.recipients), duplicates=parsed.duplicates
    )
    return _json(accepted, status=202)


async def _broadcast(request: web.Request) -> BroadcastView:
    """The broadcast the path names, if the token may use its number (404 otherwise)."""
    row = await request.app[SETUP].store.get(request.match_info["broadcast_id"])
    if row is None:
        raise web.HTTPNotFound(reason="no such broadcast")
    check_number(request, row.phone_number_id, "broadcast_id")
    return BroadcastView.of(row)


async def get_broadcast(request: web.Request) -> web.Response:
    return _json(await _broadcast(request))


def _transition(action: str) -> Callable[[web.Request], Any]:
    from_states, to_state = TRANSITIONS[action]

    async def change(request: web.Request) -> web.Response:
        broadcast = await _broadcast(request)
        state = await request.app[SETUP].store.change_state(
            broadcast.id, from_states=from_states, to_state=to_state
        )
        if state != to_state:
            return problem(
                409,
                f"a broadcast that is {state} cannot be {action}d",
                fields=[("state", str(state))],
            )
        return _json(StateView(id=broadcast.id, state=to_state))

    change.__name__ = f"{action}_broadcast"
    return change


async def list_recipients(request: web.Request) -> web.Response:
    limit = _limit(request)
    status = request.query.get("status")
    if status is not None and status not in RECIPIENT_STATUSES:
        raise BadRequest("status", f"one of {', '.join(sorted(RECIPIENT_STATUSES))}")
    after = _cursor(request, "r")
    broadcast = await _broadcast(request)
    rows = await request.app[SETUP].store.recipients(
        broadcast.id, status, limit + 1, int(after[0]) if after else None
    )
    page, more = rows[:limit], len(rows) > limit
    next_cursor = _encode("r", page[-1].seq) if more else None
    return _json(RecipientPage(data=[RecipientItem.of(r) for r in page], next_cursor=next_cursor))


async def list_opt_outs(request: web.Request) -> web.Response:
    limit = _limit(request)
    after = _cursor(request, "o")
    given = request.query.get("phone_number_id")
    number = _phone_number_id(given, "phone_number_id") if given else None
    if number is not None:
        check_number(request, number, "phone_number_id")
    elif request[CALLER].numbers is not None:
        raise BadRequest("phone_number_id", "required of a token limited to some numbers")
    rows = await request.app[SETUP].opt_outs.page(
        number, limit + 1, (str(after[0]), str(after[1])) if after else None
    )
    page, more = rows[:limit], len(rows) > limit
    last = page[-1] if more else None
    next_cursor = _encode("o", last.phone_number_id, last.user) if last else None
    return _json(OptOutPage(data=[OptOutItem.of(r) for r in page], next_cursor=next_cursor))


async def clear_opt_out(request: web.Request) -> web.Response:
    number = _phone_number_id(request.match_info["phone_number_id"], "phone_number_id")
    user = _user(request.match_info["user"])
    check_number(request, number, "phone_number_id")
    if not await request.app[SETUP].opt_outs.clear(number, user):
        raise web.HTTPNotFound(reason="this user has not opted out")
    return web.Response(status=204)


def _encode(tag: str, *key: object) -> str:
    raw = json.dumps([tag, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor(request: web.Request, tag: str) -> list[Any] | None:
    """The cursor's key (after its tag), None without one; 400 when it is not one of ours."""
    raw = request.query.get("cursor")
    if raw is None:
        return None
    try:
        if len(raw) > cursors.MAX_LENGTH:
            raise ValueError
        key = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError, RecursionError):
        raise BadRequest("cursor", "not a cursor this api gave") from None
    good = (
        isinstance(key, list)
        and key[:1] == [tag]
        and (
            (tag == "r" and len(key) == 2 and type(key[1]) is int and 0 <= key[1] < 2**31)
            or (
                tag == "o"
                and len(key) == 3
                and all(isinstance(k, str) and len(k) <= 160 and "\x00" not in k for k in key[1:])
            )
        )
    )
    if not good:
        raise BadRequest("cursor", "not a cursor of this list")
    rest: list[Any] = key[1:]
    return rest


def add_broadcast_routes(app: web.Application) -> None:
    app.router.add_post(BROADCASTS_PATH, create_broadcast)
    app.router.add_get(BROADCAST_PATH, get_broadcast)
    for action in TRANSITIONS:
        app.router.add_post(f"{BROADCAST_PATH}/{action}", _transition(action))
    app.router.add_get(RECIPIENTS_PATH, list_recipients)
    app.router.add_get(OPT_OUTS_PATH, list_opt_outs)
    app.router.add_delete(OPT_OUT_PATH, clear_opt_out)
