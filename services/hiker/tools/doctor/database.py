"""The api's database: reachable with the api's URL, and its schema at this version's head."""

from __future__ import annotations

import asyncio

from hiker.api.db import migrate
from hiker.api.db.engine import create_engine
from hiker.core.errors import Unavailable, classify
from hiker.core.observability import redact
from hiker.core.settings import ApiSettings
from hiker.tools.doctor.report import Finding, Status


async def check_database(settings: ApiSettings, timeout_seconds: float) -> list[Finding]:
    """A row for reaching the database, and one for its schema's revision."""
    shown = redact(settings.database_url.get_secret_value())
    engine = create_engine(settings.async_database_url(), timeout_seconds=timeout_seconds)
    try:
        revision = await asyncio.wait_for(migrate.current_revision(engine), timeout_seconds * 2)
    except Exception as exc:
        verdict = classify(exc)
        why = verdict.error_class if isinstance(verdict, Unavailable) else type(exc).__name__
        return [
            Finding(
                "database",
                Status.FAIL,
                f"not reachable at {shown} ({why})",
                "start the database, or fix HIKER_DATABASE_URL (host, port, database, user, "
                "password); hiker api holds what it records until it answers",
            )
        ]
    finally:
        await engine.dispose()
    head = migrate.head_revision()
    rows = [Finding("database", Status.OK, f"{shown} reachable")]
    if revision == head:
        rows.append(Finding("database schema", Status.OK, f"at head ({head})"))
    elif revision is None:
        rows.append(
            Finding(
                "database schema",
                Status.WARN,
                f"empty: no migration applied yet (head is {head})",
                "start hiker api: it creates the schema itself",
            )
        )
    else:
        rows.append(
            Finding(
                "database schema",
                Status.WARN,
                f"at {revision}, not at this version's head {head}",
                "start hiker api of this version (it upgrades the schema at start); a revision "
                "unknown here means a newer Hiker migrated it: run that version",
            )
        )
    return rows
