"""The OpenAPI description of the broadcast and opt-out routes (merged into
``openapi.document``)."""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel

from hiker.api import broadcast_views as bv
from hiker.api.broadcasting import PARAMETER_MAX, PARAMETERS_MAX, RECIPIENT_MAX
from hiker.api.views import Problem

_REF: Final = "#/components/schemas/{model}"

MODELS: Final[tuple[type[BaseModel], ...]] = (
    bv.BroadcastAccepted,
    bv.BroadcastView,
    bv.StateView,
    bv.RecipientPage,
    bv.OptOutPage,
)


def _json(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json(Problem)}


def broadcast_request() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "phone_number_id": {"type": "string", "pattern": "^[0-9]+$"},
            "name": {"type": "string", "minLength": 1, "maxLength": 255},
            "template": {"$ref": _REF.format(model="Template")},
            "recipients": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {
                        "to": {"type": "string", "minLength": 1, "maxLength": RECIPIENT_MAX},
                        "parameters": {
                            "type": "array",
                            "maxItems": PARAMETERS_MAX,
                            "description": "the template body's {{1}}, {{2}}, ... for this user",
                            "items": {"type": "string", "minLength": 1, "maxLength": PARAMETER_MAX},
                        },
                    },
                    "required": ["to"],
                    "additionalProperties": False,
                },
            },
            "start_at": {"type": "string", "format": "date-time"},
            "marketing": {
                "type": "boolean",
                "default": False,
                "description": "a marketing template: Meta's Marketing Messages API where "
                "HIKER_MARKETING_MESSAGES_API is set",
            },
        },
        "required": ["phone_number_id", "name", "template", "recipients"],
        "additionalProperties": False,
    }


def paths(errors: dict[str, Any], paging: list[dict[str, Any]]) -> dict[str, Any]:
    """The routes, with the api's shared ``errors`` and ``paging`` parameters."""
    broadcast_id = [
        {"name": "broadcast_id", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    not_found = {"404": _problem("no such broadcast")}
    transitions = {
        action: {
            "parameters": broadcast_id,
            "post": {
                "operationId": f"{action}Broadcast",
                "summary": summary,
                "responses": {
                    "200": {"description": "its state now", "content": _json(bv.StateView)},
                    "409": _problem("not possible in the broadcast's state (named)"),
                    **not_found,
                    **errors,
                },
            },
        }
        for action, summary in (
            ("pause", "Stop handing recipients to the sender (those handed go on)"),
            ("resume", "Go on where it stopped; each recipient is still sent once"),
            ("cancel", "Hand no more recipients to the sender; the queued are cancelled"),
        )
    }
    return {
        "/v1/broadcasts": {
            "post": {
                "operationId": "createBroadcast",
                "summary": "A template to many users, within the number's rate share and the "
                "messaging limit; JSON, or a CSV upload (text/csv: a `to` column, then the "
                "body parameters; the rest in the query)",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": _REF.format(model="BroadcastRequest")}
                        },
                        "text/csv": {"schema": {"type": "string"}},
                    },
                },
                "responses": {
                    "202": {
                        "description": "written; sending",
                        "content": _json(bv.BroadcastAccepted),
                    },
                    "413": _problem("larger than HIKER_BROADCAST_MAX_BYTES"),
                    "422": _problem("a bad request (named), or a key reused for another"),
                    **errors,
                },
            }
        },
        "/v1/broadcasts/{broadcast_id}": {
            "parameters": broadcast_id,
            "get": {
                "operationId": "getBroadcast",
                "summary": "A broadcast's state and counts",
                "responses": {
                    "200": {"description": "the broadcast", "content": _json(bv.BroadcastView)},
                    **not_found,
                    **errors,
                },
            },
        },
        **{f"/v1/broadcasts/{{broadcast_id}}/{a}": item for a, item in transitions.items()},
        "/v1/broadcasts/{broadcast_id}/recipients": {
            "parameters": broadcast_id,
            "get": {
                "operationId": "listBroadcastRecipients",
                "summary": "Its recipients in order, optionally of one status (?status=failed)",
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": list(bv.STATUSES)},
                    },
                    *paging,
                ],
                "responses": {
                    "200": {"description": "a page", "content": _json(bv.RecipientPage)},
                    **not_found,
                    **errors,
                },
            },
        },
        "/v1/opt-outs": {
            "get": {
                "operationId": "listOptOuts",
                "summary": "Users who opted out of broadcasts (HIKER_OPT_OUT_WORDS)",
                "parameters": [
                    {
                        "name": "phone_number_id",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                    *paging,
                ],
                "responses": {
                    "200": {"description": "a page", "content": _json(bv.OptOutPage)},
                    **errors,
                },
            }
        },
        "/v1/opt-outs/{phone_number_id}/{user}": {
            "parameters": [
                {
                    "name": "phone_number_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                },
                {"name": "user", "in": "path", "required": True, "schema": {"type": "string"}},
            ],
            "delete": {
                "operationId": "clearOptOut",
                "summary": "The user gets broadcasts again",
                "responses": {
                    "204": {"description": "cleared"},
                    "404": _problem("this user has not opted out"),
                    **errors,
                },
            },
        },
    }
