"""Alembic migrations of the api's database, run by ``hiker api`` at start
(``hiker.api.db.migrate.upgrade``). A new one: ``alembic -x url=sqlite:///tmp/x.db revision
--autogenerate -m "what"`` from ``services/hiker/api`` after changing ``db/tables.py``."""
