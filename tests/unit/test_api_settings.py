"""The api's settings, database errors classified as the database being away (or not), and
the OpenAPI document valid by the specification."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from openapi_spec_validator import validate as validate_openapi
from sqlalchemy import exc as sa_exc

from hiker.api.openapi import document
from hiker.core.errors import BUSY, DATABASE, DatabaseUnavailable, Unavailable, classify
from hiker.core.settings import ApiSettings, ConfigError, load_settings

API_TOKEN = "api-token-of-these-tests-0001"


def test_the_token_is_required_and_named_never_shown() -> None:
    with pytest.raises(ConfigError, match="HIKER_API_TOKEN is required"):
        load_settings(ApiSettings, {})
    with pytest.raises(ConfigError, match="HIKER_API_TOKEN is invalid") as caught:
        load_settings(ApiSettings, {"HIKER_API_TOKEN": "   "})
    assert "   " not in str(caught.value).split(":", 1)[1].split("is invalid")[0]


def test_database_urls_get_their_asyncio_driver() -> None:
    def url(value: str | None) -> str:
        env = {"HIKER_API_TOKEN": API_TOKEN, **({"HIKER_DATABASE_URL": value} if value else {})}
        return load_settings(ApiSettings, env).async_database_url()

    assert url(None) == "sqlite+aiosqlite:///./.hiker/hiker.db"
    assert url("postgresql://u:p@db/hiker") == "postgresql+asyncpg://u:p@db/hiker"
    assert url("postgres://u:p@db/hiker") == "postgresql+asyncpg://u:p@db/hiker"
    assert url("sqlite:////var/lib/hiker/h.db") == "sqlite+aiosqlite:////var/lib/hiker/h.db"
    with pytest.raises(ConfigError, match="HIKER_DATABASE_URL is invalid") as caught:
        url("mysql://u:secret-pw@db/hiker")
    assert "secret-pw" not in str(caught.value)
    settings = load_settings(ApiSettings, {"HIKER_API_TOKEN": API_TOKEN})
    assert (settings.api_port, settings.metrics_port) == (8081, 9105)


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"error {sqlstate}")
        self.sqlstate = sqlstate


def _dbapi(orig: Exception, statement: str | None = "SELECT 1", **kwargs: Any) -> sa_exc.DBAPIError:
    return sa_exc.DBAPIError(statement, None, orig, **kwargs)


@pytest.mark.parametrize(
    ("error", "verdict"),
    [
        (_dbapi(_PgError("08006")), Unavailable(DATABASE, "connection")),
        (_dbapi(_PgError("53300")), Unavailable(DATABASE, "resources")),
        (_dbapi(_PgError("57P01")), Unavailable(DATABASE, "shutdown")),
        (_dbapi(_PgError("28P01")), Unavailable(DATABASE, "auth")),
        (_dbapi(_PgError("3D000")), Unavailable(DATABASE, "no_database")),
        (_dbapi(_PgError("40P01")), BUSY),
        (_dbapi(_PgError("55000"), statement=None), Unavailable(DATABASE, "connect")),
        (_dbapi(_PgError("42P01")), None),  # no such table: a bug, not an outage
        (_dbapi(_PgError("23505")), None),
        (
            _dbapi(_PgError("42P01"), connection_invalidated=True),
            Unavailable(DATABASE, "connection"),
        ),
        (_dbapi(sqlite3.OperationalError("database is locked")), Unavailable(DATABASE, "locked")),
        (
            _dbapi(sqlite3.OperationalError("unable to open database file")),
            Unavailable(DATABASE, "unreachable"),
        ),
        (_dbapi(sqlite3.OperationalError("no such table: messages")), None),
        (sa_exc.TimeoutError("QueuePool limit"), Unavailable(DATABASE, "pool_timeout")),
        (
            DatabaseUnavailable("ConnectionRefusedError"),
            Unavailable(DATABASE, "ConnectionRefusedError"),
        ),
        (sa_exc.ArgumentError("bad"), None),
    ],
)
def test_database_errors_are_classified(error: BaseException, verdict: object) -> None:
    assert classify(error) == verdict


def test_the_openapi_document_is_valid_and_names_every_route() -> None:
    spec = document()
    validate_openapi(spec)
    assert set(spec["paths"]) == {
        "/v1/conversations",
        "/v1/conversations/{phone_number_id}/{user}/messages",
        "/v1/conversations/{phone_number_id}/{user}/handoff",
        "/v1/messages",
        "/v1/templates",
        "/v1/media/{media_id}",
        "/v1/openapi.json",
        "/v1/broadcasts",
        "/v1/broadcasts/{broadcast_id}",
        "/v1/broadcasts/{broadcast_id}/pause",
        "/v1/broadcasts/{broadcast_id}/resume",
        "/v1/broadcasts/{broadcast_id}/cancel",
        "/v1/broadcasts/{broadcast_id}/recipients",
        "/v1/opt-outs",
        "/v1/opt-outs/{phone_number_id}/{user}",
    }
    item = spec["components"]["schemas"]["MessageItem"]
    assert {"id", "direction", "type", "text", "status", "error", "at"} <= set(item["required"])
