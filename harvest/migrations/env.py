"""Alembic environment of the harvest tables: `core.db.migrate` passes the connection in."""

import harvest.store_sql  # noqa: F401  (declares the harvest tables on Base.metadata)
from core.db import Base, run_migrations_in_env

run_migrations_in_env(Base.metadata)
