"""``hiker doctor``'s database rows: reachable, the schema at head (or empty, or away), no
password shown, and no api rows where no api runs."""

from __future__ import annotations

import pytest

from hiker.api.db import migrate
from hiker.api.db.engine import create_engine
from hiker.tools.doctor.checkup import DoctorOptions, diagnose
from hiker.tools.doctor.report import Finding, Status
from tests.integration.api.conftest import API_TOKEN, PostgresDatabase
from tests.integration.conftest import PHONE_NUMBER_ID, PipelineFactory

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-database-pw"


def rows(findings: list[Finding], prefix: str) -> dict[str, Finding]:
    return {f.check: f for f in findings if f.check.startswith(prefix)}


async def test_the_database_rows_follow_the_schema_and_never_show_the_password(
    make_pipeline: PipelineFactory, postgres_database: PostgresDatabase
) -> None:
    pipeline = await make_pipeline()
    # Trust authentication ignores the password: it is there to be kept out of the report.
    url = postgres_database.url.replace("postgres@", f"postgres:{PASSWORD}@", 1)
    env = {**pipeline.env, "HIKER_API_TOKEN": API_TOKEN, "HIKER_DATABASE_URL": url}
    options = DoctorOptions(pipeline.webhook_url, PHONE_NUMBER_ID, timeout=3)

    found = rows(await diagnose(env, options), "database")
    assert found["database"].status is Status.OK
    assert found["database schema"].status is Status.WARN
    assert "start hiker api" in found["database schema"].fix

    engine = create_engine(postgres_database.url, timeout_seconds=5)
    try:
        await migrate.upgrade(engine)
    finally:
        await engine.dispose()
    findings = await diagnose(env, options)
    found = rows(findings, "database")
    assert found["database schema"].status is Status.OK
    assert migrate.head_revision() in (found["database schema"].detail or "")
    assert rows(findings, "config: api")["config: api"].status is Status.OK
    for finding in findings:
        assert PASSWORD not in finding.detail + finding.fix
        assert API_TOKEN not in finding.detail + finding.fix

    await postgres_database.block()
    try:
        found = rows(await diagnose(env, options), "database")
    finally:
        await postgres_database.unblock()
    assert found["database"].status is Status.FAIL
    assert "HIKER_DATABASE_URL" in found["database"].fix
    assert PASSWORD not in found["database"].detail


async def test_no_api_rows_where_no_api_runs(make_pipeline: PipelineFactory) -> None:
    pipeline = await make_pipeline()
    findings = await diagnose(
        pipeline.env, DoctorOptions(pipeline.webhook_url, PHONE_NUMBER_ID, timeout=3)
    )
    assert rows(findings, "database") == {}
    assert rows(findings, "config: api") == {}
    assert not any("hiker.api.history" in f.check for f in findings)
