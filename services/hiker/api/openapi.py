"""The OpenAPI 3.1 description of the api, served at ``/v1/openapi.json``.

Its schemas come from the models the api answers with (``views``) and from the actions the
rules file writes (``core.actions``), so the document says what the code does.
"""

from __future__ import annotations

from functools import cache
from typing import Any, Final

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from hiker.api import broadcast_openapi, handoff, templates, views
from hiker.api.sending import PHONE_NUMBER_ID_MAX, RECIPIENT_MAX
from hiker.core.actions import ACTIONS_BY_NAME

REF: Final = "#/components/schemas/{model}"
LIMIT_MAX: Final = 100
LIMIT_DEFAULT: Final = 20
IDEMPOTENCY_KEY_MAX: Final = 255


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json(views.Problem)}


def _json(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(model)}}


def _send_request() -> dict[str, Any]:
    actions: dict[str, Any] = {}
    for name, model in ACTIONS_BY_NAME.items():
        schema: dict[str, Any] = _ref(model)
        actions[name] = (
            {"oneOf": [{"type": "string", "minLength": 1}, schema]} if name == "text" else schema
        )
    return {
        "type": "object",
        "description": "The recipient and one action, written as in the rules file "
        "(`text: hello`, `buttons: {body, options}`, ...).",
        "properties": {
            "phone_number_id": {
                "type": "string",
                "pattern": "^[0-9]+$",
                "maxLength": PHONE_NUMBER_ID_MAX,
            },
            "to": {"type": "string", "minLength": 1, "maxLength": RECIPIENT_MAX},
            **actions,
        },
        "required": ["phone_number_id", "to"],
        "additionalProperties": False,
        "minProperties": 3,
        "maxProperties": 3,
        "oneOf": [{"required": [name]} for name in ACTIONS_BY_NAME],
    }


def _handoff_request() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "minutes": {"type": "number", "exclusiveMinimum": 0, "maximum": handoff.MAX_MINUTES},
            "reason": {
                "type": "string",
                "minLength": 1,
                "maxLength": handoff.REASON_MAX,
                "default": handoff.WAY_IN,
            },
        },
        "required": ["minutes"],
        "additionalProperties": False,
    }


_CONVERSATION: Final = [
    {"name": "phone_number_id", "in": "path", "required": True, "schema": {"type": "string"}},
    {"name": "user", "in": "path", "required": True, "schema": {"type": "string"}},
]
_PAGING: Final = [
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": LIMIT_MAX, "default": LIMIT_DEFAULT},
    },
    {
        "name": "cursor",
        "in": "query",
        "required": False,
        "description": "next_cursor of the previous page",
        "schema": {"type": "string"},
    },
]
_ERRORS: Final = {
    "400": _problem("a bad limit or cursor, or a missing Idempotency-Key"),
    "401": _problem("no bearer token, or not one the api knows"),
    "403": _problem("the token lacks the scope this route needs, or may not use this number"),
    "503": _problem("the database or the broker is unavailable; retry later"),
}


@cache
def document() -> dict[str, Any]:
    """The OpenAPI document (built once)."""
    models: list[type[BaseModel]] = [
        views.MessagePage,
        views.ConversationPage,
        templates.TemplatePage,
        views.Accepted,
        views.Problem,
        handoff.Owner,
        *broadcast_openapi.MODELS,
    ]
    _, defs = models_json_schema(
        [(model, "serialization") for model in models]
        + [(model, "validation") for model in ACTIONS_BY_NAME.values()],
        ref_template=REF,
    )
    schemas = dict(defs.get("$defs", {}))
    schemas["SendRequest"] = _send_request()
    schemas["HandoffRequest"] = _handoff_request()
    schemas["BroadcastRequest"] = broadcast_openapi.broadcast_request()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Hiker API",
            "version": "1",
            "description": "History of WhatsApp conversations (both directions, with statuses) "
            "and sends from a backend, through Hiker's sender.",
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/conversations": {
                "get": {
                    "operationId": "listConversations",
                    "summary": "Conversations, by their latest message first",
                    "parameters": [
                        {
                            "name": "phone_number_id",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string"},
                        },
                        *_PAGING,
                    ],
                    "responses": {
                        "200": {"description": "a page", "content": _json(views.ConversationPage)},
                        **_ERRORS,
                    },
                }
            },
            "/v1/conversations/{phone_number_id}/{user}/messages": {
                "get": {
                    "operationId": "listMessages",
                    "summary": "A conversation's messages, both directions, latest first",
                    "parameters": [
                        {
                            "name": "phone_number_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "user",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        *_PAGING,
                    ],
                    "responses": {
                        "200": {"description": "a page", "content": _json(views.MessagePage)},
                        **_ERRORS,
                    },
                }
            },
            "/v1/messages": {
                "post": {
                    "operationId": "sendMessage",
                    "summary": "Send one action to a user, once per Idempotency-Key",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": True,
                            "description": "the same key again sends nothing more and gets "
                            "the same id",
                            "schema": {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": IDEMPOTENCY_KEY_MAX,
                            },
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": REF.format(model="SendRequest")}
                            }
                        },
                    },
                    "responses": {
                        "202": {
                            "description": "handed to the sender",
                            "content": _json(views.Accepted),
                        },
                        "409": {
                            **_problem(
                                "another request with this Idempotency-Key is in flight; "
                                "retry after Retry-After seconds"
                            ),
                            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                        },
                        "422": _problem(
                            "a bad action (named), or a key reused for another request"
                        ),
                        **_ERRORS,
                    },
                }
            },
            "/v1/media/{media_id}": {
                "get": {
                    "operationId": "getMedia",
                    "summary": "An inbound medium's bytes, with its type (HIKER_MEDIA_STORE)",
                    "parameters": [
                        {
                            "name": "media_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "the bytes",
                            "content": {"*/*": {"schema": {"type": "string"}}},
                        },
                        **_ERRORS,
                    },
                }
            },
            "/v1/templates": {
                "get": {
                    "operationId": "listTemplates",
                    "summary": "Message templates as Meta's template webhooks last described "
                    "them (status, quality, category); not for tokens limited to numbers",
                    "parameters": [
                        {
                            "name": "status",
                            "in": "query",
                            "required": False,
                            "description": "only those of this status, e.g. PAUSED",
                            "schema": {"type": "string"},
                        },
                        *_PAGING,
                    ],
                    "responses": {
                        "200": {"description": "a page", "content": _json(templates.TemplatePage)},
                        **_ERRORS,
                    },
                }
            },
            handoff.PATH: {
                "parameters": _CONVERSATION,
                "post": {
                    "operationId": "handOver",
                    "summary": "A person owns the conversation for `minutes`: the bot neither "
                    "answers nor follows up; sends through POST /v1/messages go out",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": REF.format(model="HandoffRequest")}
                            }
                        },
                    },
                    "responses": {
                        "200": {"description": "a person owns it", "content": _json(handoff.Owner)},
                        "422": _problem("minutes or reason out of range (named)"),
                        **_ERRORS,
                    },
                },
                "delete": {
                    "operationId": "giveBack",
                    "summary": "The bot answers the conversation again",
                    "responses": {
                        "200": {"description": "owned by the bot", "content": _json(handoff.Owner)},
                        **_ERRORS,
                    },
                },
            },
            "/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document (any valid token may read it)",
                    "responses": {
                        "200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}},
                        "401": _ERRORS["401"],
                    },
                }
            },
            **broadcast_openapi.paths(_ERRORS, _PAGING),
        },
    }
