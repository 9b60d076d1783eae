"""Alembic migrations of the harvest tables (run by `core.db.migrate`, never by the Alembic CLI)."""
