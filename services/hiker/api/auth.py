"""Who is calling the api: the bearer token, matched in constant time against every token the
api accepts (``core.api_tokens``), what its scopes allow on each route, and which phone
numbers it may read or send for."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from aiohttp import web

from hiker.core.api_tokens import ApiToken, Scope, find

# Every token accepted (``ApiSettings.tokens()``).
TOKENS: web.AppKey[tuple[ApiToken, ...]] = web.AppKey("api_tokens")
# The token the request came with, once it is known to be one of them.
CALLER = web.RequestKey("api_caller", ApiToken)

# What each route needs, by its pattern. A route not listed needs ``admin``: a route a later
# issue adds is closed to the narrower scopes until it is listed here.
ROUTE_SCOPES: Final[Mapping[str, Scope | None]] = {
    "GET /v1/conversations": Scope.READ,
    "GET /v1/conversations/{phone_number_id}/{user}/messages": Scope.READ,
    "POST /v1/messages": Scope.SEND,
    "GET /v1/media/{media_id}": Scope.READ,
    "GET /v1/templates": Scope.READ,
    # Handing a conversation to a person (and back) is what a tool that sends as them does.
    "POST /v1/conversations/{phone_number_id}/{user}/handoff": Scope.SEND,
    "DELETE /v1/conversations/{phone_number_id}/{user}/handoff": Scope.SEND,
    # Broadcasts send; reading their counts and recipients is history. Clearing an opt-out
    # overrides what a user asked for: admin.
    "POST /v1/broadcasts": Scope.SEND,
    "GET /v1/broadcasts/{broadcast_id}": Scope.READ,
    "POST /v1/broadcasts/{broadcast_id}/pause": Scope.SEND,
    "POST /v1/broadcasts/{broadcast_id}/resume": Scope.SEND,
    "POST /v1/broadcasts/{broadcast_id}/cancel": Scope.SEND,
    "GET /v1/broadcasts/{broadcast_id}/recipients": Scope.READ,
    "GET /v1/opt-outs": Scope.READ,
    "DELETE /v1/opt-outs/{phone_number_id}/{user}": Scope.ADMIN,
    # Any valid token: the document is no secret from a client, only from strangers.
    "GET /v1/openapi.json": None,
    # No route matched (404, 405): any valid token learns only that.
    "unmatched": None,
}


class Forbidden(Exception):
    """A valid token asked for what it may not have (403)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def tokens_of(app: web.Application) -> tuple[ApiToken, ...]:
    """The tokens the app accepts (none: every request is refused)."""
    return app.get(TOKENS, ())


def caller_of(app: web.Application, authorization: str) -> ApiToken | None:
    """The token ``Authorization: Bearer <token>`` names, if the app accepts it."""
    scheme, _, given = authorization.partition(" ")
    # Header bytes that are not UTF-8 reach us as surrogates: encoded back to the bytes they
    # were, they match no token (a plain encode() would raise, a 500).
    offered = given.strip().encode("utf-8", "surrogateescape")
    found = find(tokens_of(app), offered)
    return found if scheme.lower() == "bearer" else None


def check_scope(caller: ApiToken, route: str) -> None:
    """Forbidden unless ``caller``'s scopes cover ``route``."""
    needed = ROUTE_SCOPES.get(route, Scope.ADMIN)
    if needed is not None and not caller.allows(needed):
        raise Forbidden(f"this token lacks the {needed.value} scope this route needs")


def check_number(request: web.Request, phone_number_id: str, field: str) -> None:
    """Forbidden unless the request's token may use ``phone_number_id``."""
    if not request[CALLER].may_use(phone_number_id):
        raise Forbidden("this token may not use this phone number id", field)
