"""What the api's integration tests share: databases of their own (a SQLite file, or a
PostgreSQL database with a random name, dropped afterwards whatever happens) and the api
started beside the pipeline of ``tests/integration/conftest.py``.

PostgreSQL is the one at ``HIKER_TEST_POSTGRES_URL`` (default: local, user postgres); where it
cannot be reached the PostgreSQL cases skip (and fail under ``CI``).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from hiker.api.app import OPS_APP
from hiker.api.app import create_app as create_api
from hiker.core.settings import ApiSettings, load_settings
from tests.integration.conftest import Pipeline

ADMIN_URL = os.environ.get(
    "HIKER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
API_TOKEN = "test-api-token-0123456789"


@dataclass(frozen=True)
class PostgresDatabase:
    """A database of this test's own, and the means to take it away and give it back."""

    name: str

    @property
    def url(self) -> str:
        root = ADMIN_URL.rsplit("/", 1)[0]
        return f"{root.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{self.name}"

    async def block(self) -> None:
        """Refuse new connections and end the open ones: the database is away."""
        await _admin(
            f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false',
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{self.name}'"
            " AND pid <> pg_backend_pid()",
        )

    async def unblock(self) -> None:
        await _admin(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')


async def _admin(*statements: str) -> None:
    connection = await asyncpg.connect(ADMIN_URL, timeout=5)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


# Sync fixtures, each on a loop of its own: the database outlives the test's loop, and is
# dropped after it whatever the test did.
@pytest.fixture
def postgres_database() -> Iterator[PostgresDatabase]:
    name = f"hiker_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        _skip_or_fail(f"PostgreSQL unreachable at {ADMIN_URL}: {type(exc).__name__}")
    try:
        yield PostgresDatabase(name)
    finally:
        # FORCE: a connection left open by a failing test must not keep the database alive.
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The api's database URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'history.db'}"
    database: PostgresDatabase = request.getfixturevalue("postgres_database")
    return database.url


@dataclass
class RunningApi:
    server: TestServer
    ops: TestServer

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    def ops_url(self, path: str) -> str:
        return str(self.ops.make_url(path))


async def start_api(pipeline: Pipeline, database_url: str, **env: str) -> RunningApi:
    """``hiker api`` beside ``pipeline`` (same broker vhost), ready: schema at head, consuming."""
    settings = load_settings(
        ApiSettings,
        {**pipeline.env, "HIKER_API_TOKEN": API_TOKEN, "HIKER_DATABASE_URL": database_url, **env},
    )
    app = create_api(settings)
    server = await pipeline.start("api", app)
    ops = await pipeline.start("api-ops", app[OPS_APP])
    running = RunningApi(server, ops)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        async with pipeline.session.get(running.ops_url("/readyz")) as response:
            if response.status == 200:
                return running
        await asyncio.sleep(0.05)
    raise AssertionError("api did not become ready")
