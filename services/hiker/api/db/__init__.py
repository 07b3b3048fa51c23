"""The api's database: tables, engine, migrations and the queries (SQLAlchemy Core, asyncio)."""

# Every table on the one ``metadata`` once the package is imported (migrations are compared
# with it): the broadcasts' tables live in a module of their own.
from hiker.api.db import broadcast_tables as broadcast_tables
