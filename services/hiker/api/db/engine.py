"""The SQLAlchemy engine for a database URL: SQLite (a file, one writer) or PostgreSQL."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from hiker.core.errors import DatabaseUnavailable

# Connections per process to PostgreSQL: the records consumer's concurrent handlers and the
# HTTP requests share them; past this they wait (up to the timeout) instead of piling up.
POSTGRES_POOL_SIZE = 10
POSTGRES_POOL_OVERFLOW = 5


def create_engine(
    url: str,
    *,
    timeout_seconds: float,
    pool_size: int = POSTGRES_POOL_SIZE,
    pool_overflow: int = POSTGRES_POOL_OVERFLOW,
) -> AsyncEngine:
    """An engine for ``url`` (an asyncio driver's URL, ``ApiSettings.async_database_url``).

    Statement parameters are never put into errors or logs: they hold users' numbers and texts.
    """
    parsed = make_url(url)
    common: dict[str, Any] = {"hide_parameters": True, "pool_timeout": timeout_seconds}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # One connection: SQLite takes one writer at a time, and waiting in the pool is
        # cheaper and clearer than "database is locked" retries.
        engine = create_async_engine(
            url,
            pool_size=1,
            max_overflow=0,
            connect_args={"timeout": timeout_seconds},
            **common,
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_overflow,
        # A connection the server closed (a restart, a failover) is found out before use.
        pool_pre_ping=True,
        connect_args={"timeout": timeout_seconds, "command_timeout": timeout_seconds},
        **common,
    )


@contextlib.asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """One transaction on ``engine``; a socket error the driver did not wrap (a refused or
    timed-out connect) is ``DatabaseUnavailable``: the database away, whatever the OS called
    it, so that a consumer holds its message rather than poison it."""
    try:
        async with engine.begin() as connection:
            yield connection
    except (OSError, TimeoutError) as exc:
        raise DatabaseUnavailable(type(exc).__name__) from exc


def _sqlite_pragmas(connection: Any, _: Any) -> None:
    cursor = connection.cursor()
    # Readers (the HTTP side) do not wait for the writer, nor it for them.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
