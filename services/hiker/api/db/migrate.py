"""The schema's version: upgrading to the newest migration at start, and telling where a
database stands (``hiker doctor``).

Several replicas may start at once. On PostgreSQL the upgrade runs in one transaction holding
an advisory lock: the first replica migrates, the others wait for it and then find nothing left
to do; DDL is transactional there, so a failed upgrade leaves the schema as it was. SQLite
takes one process at a time by itself (its write lock).
"""

from __future__ import annotations

from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

SCRIPT_LOCATION: Final = "hiker.api:migrations"
# The advisory lock the upgrade holds on PostgreSQL (any constant shared by all replicas).
_UPGRADE_LOCK: Final = 0x68696B6572  # "hiker"


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, without a file: the migrations ship inside the package."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """The newest migration this version of Hiker ships."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the database to ``head_revision()``; a no-op when it is there already."""
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _UPGRADE_LOCK}
            )
        await connection.run_sync(_upgrade)


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


async def current_revision(engine: AsyncEngine) -> str | None:
    """The migration the database is at (None: none applied yet)."""
    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )
