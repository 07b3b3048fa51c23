"""The api's database: tables, engine, migrations and the queries (SQLAlchemy Core, asyncio)."""
