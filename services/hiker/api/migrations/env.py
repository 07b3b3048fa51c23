"""Alembic's environment: migrations run on the connection ``hiker api`` hands over
(``db.migrate.upgrade``), or, from the alembic command line, on ``-x url=...`` (a synchronous
driver's URL) to write a new revision."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from hiker.api.db.tables import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite alters a table by copying it; Alembic does so in "batch" mode.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


given = context.config.attributes.get("connection")
if isinstance(given, Connection):
    _run(given)
else:
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("give the database to compare with: alembic -x url=sqlite:///x.db ...")
    with create_engine(url).begin() as connection:
        _run(connection)
